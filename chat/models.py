"""Conversations between one patient and one doctor, and their messages.

A message's ``seq`` is given by the server from its conversation's ``last_seq`` while the
conversation row is locked (see ``chat.services.message_send``): gap-free and in commit order
even with concurrent senders. Text is protected health information: encrypted at rest.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from core.fields import EncryptedTextField

MAX_TEXT_CHARS = 4000
MAX_ATTACHMENTS = 5


class Conversation(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    doctor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    last_seq = models.PositiveBigIntegerField(default=0)
    # The last message's time (the creation time until then): the list's order.
    last_activity_at = models.DateTimeField(default=timezone.now)
    # Read markers: the highest seq each side has read (they only move forward).
    patient_read_seq = models.PositiveBigIntegerField(default=0)
    doctor_read_seq = models.PositiveBigIntegerField(default=0)
    # Notification batching: when each side was last told of new messages, and up to which seq.
    patient_notified_at = models.DateTimeField(null=True, blank=True)
    patient_notified_seq = models.PositiveBigIntegerField(default=0)
    doctor_notified_at = models.DateTimeField(null=True, blank=True)
    doctor_notified_seq = models.PositiveBigIntegerField(default=0)
    closed_at = models.DateTimeField(null=True, blank=True)
    # Changes that add no message (an edit, a deletion, a close or a reopen) each take the
    # next ``rev``, under the row lock: a reconnecting client that names the last ``rev`` it
    # saw gets what changed since (``chat.selectors.resume_changes``). ``state_rev``: the
    # ``rev`` of the last close or reopen. Plain (not positive) integers: adding a CHECK
    # constraint would scan the table under its lock. A default in the database too: servers
    # of the previous release insert conversations without these columns.
    rev = models.BigIntegerField(default=0, db_default=0)
    state_rev = models.BigIntegerField(default=0, db_default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patient", "doctor"], name="chat_one_conversation"),
            models.CheckConstraint(condition=~Q(patient=F("doctor")), name="chat_two_people"),
        ]
        indexes = [
            models.Index(fields=["patient", "-last_activity_at"], name="chat_patient_recent"),
            models.Index(fields=["doctor", "-last_activity_at"], name="chat_doctor_recent"),
        ]

    def __str__(self) -> str:
        return f"conversation {self.id}"

    def side(self, user_id: object) -> str:
        """``patient`` or ``doctor``: which participant ``user_id`` is."""
        return "patient" if user_id == self.patient_id else "doctor"

    def other_id(self, user_id: object) -> object:
        return self.doctor_id if user_id == self.patient_id else self.patient_id


class Message(models.Model):
    id = models.BigAutoField(primary_key=True)
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages"
    )
    seq = models.PositiveBigIntegerField()
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    client_id = models.CharField(max_length=64)
    text = EncryptedTextField(blank=True, default="")
    # Ids of medical records (checked by the records app when the message is sent).
    attachments = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField()
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # The conversation's ``rev`` of this message's last edit or deletion; null if never
    # changed (nullable: added to a large table without rewriting it).
    changed_rev = models.BigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["conversation", "seq"], name="chat_message_seq"),
            models.UniqueConstraint(
                fields=["conversation", "sender", "client_id"], name="chat_message_client_id"
            ),
        ]
        indexes = [
            models.Index(
                fields=["conversation", "changed_rev"],
                condition=Q(changed_rev__isnull=False),
                name="chat_message_changed",
            ),
        ]

    def __str__(self) -> str:
        return f"message {self.conversation_id}#{self.seq}"
