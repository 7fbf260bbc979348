"""Deliveries beyond the app: e-mail (Django's e-mail backends; django-anymail's for
providers), SMS and WhatsApp (``core.sms``: the Twilio SDK, console or capture).

A notification's deliveries are created, and their tasks enqueued, in the notification's own
transaction (database task backend), so a crash loses neither and a rollback sends nothing.
``(notification, channel)`` is the delivery key. One task sends up to ``DELIVERY_BATCH`` of them,
one after the other; it claims each delivery (``queued`` ->
``sending``) in a committed transaction before calling the provider, so a retried or
duplicated task never sends twice: at most once, and a crash mid-send leaves the delivery
visibly ``sending``, until the housekeeping loop records it ``failed`` ("interrupted") after
``DELIVERY_SENDING_TIMEOUT_SECONDS``: whether the provider got it is unknown, and sending it
again could send it twice. A provider failure is retried with bounded exponential backoff up to
``DELIVERY_MAX_ATTEMPTS``, then recorded ``failed``. Provider status callbacks (Twilio's)
move ``sent`` to ``delivered`` or ``failed``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.utils import timezone
from django_tasks import task

from core import sms
from core.tasks import loop_again
from realtime.models import Channel, Delivery, DeliveryPreference, DeliveryStatus, Notification

# The stored event kinds of the protocol (DESIGN.md), each of which a user may route.
KINDS = (
    "booking.created",
    "booking.confirmed",
    "booking.rejected",
    "booking.cancelled",
    "booking.rescheduled",
    "booking.reminder",
    "booking.expired",
    "booking.completed",
    "booking.no_show",
    "review.created",
    "doctor.verification",
    "notification.created",
    "chat.message",
)
# Without a preference of the user's: e-mail for what RT-2 names (bookings made, confirmed,
# cancelled, moved, reminders), SMS for reminders, and a doctor's verification decision by
# e-mail and SMS (whichever reaches them: some doctors sign up with a phone only). WhatsApp
# only when asked for.
DEFAULT_CHANNELS: dict[str, list[str]] = {
    "booking.created": [Channel.EMAIL],
    "booking.confirmed": [Channel.EMAIL],
    "booking.cancelled": [Channel.EMAIL],
    "booking.rescheduled": [Channel.EMAIL],
    "booking.reminder": [Channel.EMAIL, Channel.SMS],
    "doctor.verification": [Channel.EMAIL, Channel.SMS],
}


_ORDER = tuple(str(c) for c in Channel.values)


def reachable_channels(user: Any) -> list[str]:
    """The channels the user can be reached on, in the canonical order."""
    phone = bool(getattr(user, "phone", None) and getattr(user, "phone_verified", False))
    email = bool(getattr(user, "email", None))
    ok: dict[str, bool] = {Channel.EMAIL: email, Channel.SMS: phone, Channel.WHATSAPP: phone}
    return [c for c in _ORDER if ok[c]]


def channels_for(
    user: Any, kind: str, preference: list[str] | None = None, reachable: list[str] | None = None
) -> list[str]:
    """The channels the user wants for this kind (``preference``: the user's saved choice,
    if any) and can be reached on (``reachable``: ``reachable_channels(user)``, when the
    caller has it already)."""
    wanted = preference if preference is not None else DEFAULT_CHANNELS.get(kind, [])
    if not wanted:
        return []
    if reachable is None:
        reachable = reachable_channels(user)
    return [c for c in reachable if c in wanted]


def preferences_for(*, user: Any) -> list[dict[str, Any]]:
    saved = dict(DeliveryPreference.objects.filter(user=user).values_list("kind", "channels"))
    return [
        {"kind": kind, "channels": saved.get(kind, DEFAULT_CHANNELS.get(kind, []))}
        for kind in KINDS
    ]


def preference_set(*, user: Any, kind: str, channels: list[str]) -> list[str]:
    ordered = [c for c in Channel.values if c in channels]
    DeliveryPreference.objects.update_or_create(
        user=user, kind=kind, defaults={"channels": ordered}
    )
    return ordered


def deliveries_create(*, notifications: list[Notification]) -> list[str]:
    """In the caller's transaction: one delivery per wanted channel of each notification's
    recipient (``channels_for``); their ids. (On PostgreSQL ``notify()`` writes them in its
    own statement, by the same rule.)"""
    if not notifications:
        return []
    saved = dict(
        DeliveryPreference.objects.filter(
            user__in=[n.user_id for n in notifications], kind=notifications[0].kind
        ).values_list("user_id", "channels")
    )
    created = Delivery.objects.bulk_create(
        [
            Delivery(notification=n, channel=channel)
            for n in notifications
            for channel in channels_for(n.user, n.kind, saved.get(n.user_id))
        ]
    )
    return [str(d.id) for d in created]


def deliveries_enqueue(delivery_ids: list[str]) -> None:
    """In the caller's transaction (the one that created the deliveries, so a rollback sends
    nothing): one task per ``DELIVERY_BATCH`` deliveries."""
    step = max(1, int(getattr(settings, "DELIVERY_BATCH", 25)))
    for start in range(0, len(delivery_ids), step):
        send_deliveries.enqueue(delivery_ids[start : start + step])


def max_attempts() -> int:
    return int(getattr(settings, "DELIVERY_MAX_ATTEMPTS", 5))


def backoff(attempts: int) -> timedelta:
    base = float(getattr(settings, "DELIVERY_RETRY_BACKOFF_SECONDS", 30))
    cap = float(getattr(settings, "DELIVERY_RETRY_MAX_BACKOFF_SECONDS", 3600))
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


def _send(delivery: Delivery) -> str:
    """Hand the delivery to its provider; the provider's message id."""
    notification = delivery.notification
    user = notification.user
    if delivery.channel == Channel.EMAIL:
        message = EmailMessage(
            subject=notification.title, body=notification.body, to=[str(user.email)]
        )
        message.send()
        status = getattr(message, "anymail_status", None)  # set by django-anymail backends
        message_id = getattr(status, "message_id", None)
        return "" if message_id is None else str(message_id)
    text = f"{notification.title}: {notification.body}" if notification.body else notification.title
    callback = getattr(settings, "TWILIO_STATUS_CALLBACK_URL", "") or None
    sent = sms.send(
        to=str(user.phone), body=text, channel=delivery.channel, status_callback=callback
    )
    return sent.provider_id


def _claim(delivery_id: str) -> Delivery | None:
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update()
            .select_related("notification__user")
            .filter(id=delivery_id)
            .first()
        )
        if delivery is None or delivery.status != DeliveryStatus.QUEUED:
            return None
        delivery.status = DeliveryStatus.SENDING
        delivery.attempts += 1
        delivery.save(update_fields=["status", "attempts", "updated_at"])
    return delivery


@task()
def send_deliveries(delivery_ids: list[str]) -> list[str]:
    """Each delivery in turn, each claimed on its own: a failure is retried alone (a task of
    its own, after the backoff) and the others go on; each one's outcome, in order."""
    return [_deliver(delivery_id) for delivery_id in delivery_ids]


def _deliver(delivery_id: str) -> str:
    delivery = _claim(delivery_id)
    if delivery is None:
        return "skipped: not queued"
    try:
        provider_id = _send(delivery)
    except Exception as exc:  # any provider failure is recorded and retried, never raised
        delivery.error = f"{type(exc).__name__}"[:300]
        with transaction.atomic():
            if delivery.attempts >= max_attempts():
                delivery.status = DeliveryStatus.FAILED
            else:
                delivery.status = DeliveryStatus.QUEUED
                due = timezone.now() + backoff(delivery.attempts)
                send_deliveries.using(run_after=due).enqueue([str(delivery.id)])
            delivery.save(update_fields=["status", "error", "updated_at"])
        return delivery.status
    delivery.status, delivery.provider_id, delivery.error = DeliveryStatus.SENT, provider_id, ""
    delivery.save(update_fields=["status", "provider_id", "error", "updated_at"])
    return "sent"


HOUSEKEEPING_EVERY = timedelta(minutes=1)
INTERRUPTED = "interrupted: the sender stopped mid-send; not sent again"


def sending_timeout() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "DELIVERY_SENDING_TIMEOUT_SECONDS", 600)))


@task()
def deliveries_housekeeping() -> int:
    """Record as ``failed`` the deliveries left ``sending`` longer than the timeout (their
    worker died between the claim and the provider's answer); the next run is enqueued first
    (``loop_again``). Rows another transaction holds are left for the next run."""
    loop_again(deliveries_housekeeping, HOUSEKEEPING_EVERY)
    now = timezone.now()
    with transaction.atomic():
        stuck = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(status=DeliveryStatus.SENDING, updated_at__lte=now - sending_timeout())
            .values_list("id", flat=True)
        )
        Delivery.objects.filter(id__in=stuck).update(
            status=DeliveryStatus.FAILED, error=INTERRUPTED, updated_at=now
        )
    return len(stuck)


# Twilio's MessageStatus values that we record; the others (queued, sending...) say nothing new.
_TWILIO_STATUS = {
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.FAILED,
    "failed": DeliveryStatus.FAILED,
}
_FINAL = {DeliveryStatus.DELIVERED, DeliveryStatus.FAILED}


@transaction.atomic
def delivery_status_update(*, provider_id: str, status: str, error_code: str = "") -> bool:
    """Apply a provider's status callback; callbacks arrive out of order, so a final status
    is never moved back. False if no delivery has this provider id."""
    new = _TWILIO_STATUS.get(status)
    delivery = Delivery.objects.select_for_update().filter(provider_id=provider_id).first()
    if delivery is None or not provider_id:
        return False
    if new is None or delivery.status in _FINAL:
        return True
    delivery.status = new
    if new == DeliveryStatus.FAILED:
        delivery.error = f"provider error {error_code}"[:300] if error_code else "undelivered"
    delivery.save(update_fields=["status", "error", "updated_at"])
    return True
