"""Chat's part of the personal-data export (``accounts.selectors.user_export``, wired at the
composition root): the user's conversations with their messages, and where the access log
finds the events about them (a staff break-glass read)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from accounts.models import User
from chat.models import Conversation, Message
from chat.selectors import message_data, participant, participating
from core.export import AuditTargets, Rows, id_texts, iso


def chat_section(user: User, rows: Rows) -> dict[str, Any]:
    """The user's conversations and every message in them (decrypted, as the chat API shows
    them; attachments as the records' ids): those the chat API would show them now, so an
    account made staff, or a doctor whose verification was withdrawn, takes no chat out."""
    conversations = rows.take(
        "chat.conversations",
        Conversation.objects.filter(participating(user))
        .select_related("patient", "doctor")
        .order_by("created_at", "id"),
    )
    messages: dict[Any, list[dict[str, Any]]] = {}
    for m in rows.take(
        "chat.messages",
        Message.objects.filter(participating(user, prefix="conversation__")).order_by(
            "conversation_id", "seq"
        ),
    ):
        messages.setdefault(m.conversation_id, []).append(message_data(m))
    found = []
    for c in conversations:
        mine, other = ("patient", "doctor") if c.patient_id == user.pk else ("doctor", "patient")
        found.append(
            {
                "id": str(c.id),
                "patient": {"id": str(c.patient_id), "name": c.patient.full_name},
                "doctor": {"id": str(c.doctor_id), "name": c.doctor.full_name},
                "closed": c.closed_at is not None,
                "closed_at": iso(c.closed_at),
                "created_at": iso(c.created_at),
                "last_activity_at": iso(c.last_activity_at),
                "last_seq": c.last_seq,
                "read_seq": getattr(c, f"{mine}_read_seq"),
                "other_read_seq": getattr(c, f"{other}_read_seq"),
                "messages": messages.get(c.id, []),
            }
        )
    return {"conversations": found}


def audit_targets(user: User, rows: Rows) -> AuditTargets:
    conversations = Conversation.objects.filter(participant(user))
    return AuditTargets(
        events=[Q(target_type="conversation", target_id__in=id_texts(conversations))]
    )
