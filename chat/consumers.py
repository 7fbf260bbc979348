"""Chat's socket messages, registered with the gateway at the composition root
(``realtime.consumers.HANDLERS``): each calls the same service as its REST endpoint, so the
checks, the errors (as ``error`` events) and the live pushes are the same."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _

from accounts.models import User
from chat import selectors, services
from core.errors import InvalidRequest
from core.ids import is_uuid


def send(*, user: User, content: dict[str, Any]) -> dict[str, Any]:
    """``chat.send`` -> ``chat.ack`` with the stored message (its ``seq``); the same
    ``client_id`` again gets the same acknowledgement."""
    data = services.message_send(
        user=user,
        conversation_id=content.get("conversation_id"),
        text=content.get("text"),
        client_id=content.get("client_id"),
        attachments=content.get("attachments") or (),
    )
    return {"type": "chat.ack", "data": data}


def read(*, user: User, content: dict[str, Any]) -> dict[str, Any]:
    """``chat.read`` up to ``seq`` -> ``chat.read.ack`` with the marker and what is unread."""
    data = services.read_up_to(
        user=user, conversation_id=content.get("conversation_id"), seq=content.get("seq")
    )
    return {"type": "chat.read.ack", "data": data}


def typing(*, user: User, content: dict[str, Any]) -> None:
    """``chat.typing``: told to the other participant, not stored, throttled."""
    services.typing(user=user, conversation_id=content.get("conversation_id"))


MAX_RESUMED_CONVERSATIONS = 200


def resume(*, user: User, content: dict[str, Any]) -> list[dict[str, Any]]:
    """Part of the gateway's ``resume``: with ``"chat": {conversation_id: last seq seen}``,
    every message missed in those conversations, in order (``chat.message`` events), then
    ``chat.resume.done`` saying whether more are left to page over REST."""
    marks = content.get("chat")
    if marks is None:
        return []
    if (
        not isinstance(marks, dict)
        or len(marks) > MAX_RESUMED_CONVERSATIONS
        or not all(is_uuid(key) for key in marks)
        or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in marks.values()
        )
    ):
        raise InvalidRequest(
            fields={"chat": _("Send an object of conversation ids to the last seq seen.")}
        )
    limit = int(getattr(settings, "REALTIME_RESUME_LIMIT", 500))
    found, more = selectors.messages_after(viewer=user, marks=marks, limit=limit)
    events = [{"type": "chat.message", "data": selectors.message_data(m)} for m in found]
    return [*events, {"type": "chat.resume.done", "data": {"more": more}}]


HANDLERS = {"chat.send": send, "chat.read": read, "chat.typing": typing}
RESUMERS = {"chat": resume}
