"""Chat's socket messages, registered with the gateway at the composition root
(``realtime.consumers.HANDLERS``): each calls the same service as its REST endpoint, so the
checks, the errors (as ``error`` events) and the live pushes are the same."""

from __future__ import annotations

from typing import Any

from accounts.models import User
from chat import services


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


HANDLERS = {"chat.send": send, "chat.read": read, "chat.typing": typing}
