from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class Notification(models.Model):
    """An event a user can see, stored first and pushed second (so nothing is lost: a client
    that missed the push reads it here). Title and body are rendered at creation in the
    recipient's language. ``seq`` is the user's event id: 1, 2, 3... per user, allocated under
    the user's counter row lock, so a user's events commit in ``seq`` order (see
    :func:`realtime.services.next_event_ids`)."""

    id = models.BigAutoField(primary_key=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    seq = models.BigIntegerField()
    kind = models.CharField(max_length=64)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    read_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "-id"], name="notification_user_idx"),
            # Retention deletes the oldest (housekeeping): cheap to keep, as rows come in
            # creation order.
            models.Index(fields=["created_at"], name="notification_created_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["user", "seq"], name="notification_user_seq_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.user_id}"

    def event(self) -> dict:
        """The socket event for this notification (the protocol's envelope)."""
        return {
            "type": self.kind,
            "id": self.seq,
            "data": {**self.data, "title": self.title, "body": self.body},
        }


class EventCounter(models.Model):
    """The last event id given to a user. Incremented in the transaction that stores the
    event: its row lock orders a user's events, so event ``n`` is visible only after ``n-1``."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    last = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.last}"


class Channel(models.TextChoices):
    EMAIL = "email", "e-mail"
    SMS = "sms", "SMS"
    WHATSAPP = "whatsapp", "WhatsApp"


class DeliveryPreference(models.Model):
    """Which channels beyond the app a user wants for one kind of notification."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="delivery_preferences"
    )
    kind = models.CharField(max_length=64)
    channels = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "kind"], name="delivery_preference_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind}: {self.channels}"


class DeliveryStatus(models.TextChoices):
    QUEUED = "queued"
    SENDING = "sending"  # handed to the provider; never handed again (at most once)
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


class Delivery(models.Model):
    """One notification sent through one channel. ``(notification, channel)`` is the delivery
    key: created once, in the notification's transaction, and sent at most once."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.QUEUED
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    provider_id = models.CharField(max_length=128, blank=True, db_index=True)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["notification", "channel"], name="delivery_key_uniq")
        ]
        # What the housekeeping loop scans each minute: the few deliveries not yet done.
        indexes = [
            models.Index(
                fields=["status", "updated_at"],
                condition=models.Q(status__in=["queued", "sending"]),
                name="delivery_pending_idx",
            )
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.status} for notification {self.notification_id}"
