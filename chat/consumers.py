"""Chat's socket messages, registered with the gateway at the composition root
(``realtime.consumers.HANDLERS``): each calls the same service as its REST endpoint, so the
checks, the errors (as ``error`` events) and the live pushes are the same."""

from __future__ import annotations

import uuid
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
# Conversations the client did not name (new to it) sent by one resume, as list items.
MAX_NEW_CONVERSATIONS = 50


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _mark(value: Any) -> tuple[int, int] | None:
    """A conversation's mark: ``[last seq seen, last rev seen]``, or the last seq alone (the
    first protocol's: every edit and deletion of the messages seen is sent again)."""
    if _count(value):
        return value, 0
    if isinstance(value, list) and len(value) == 2 and all(_count(v) for v in value):
        return value[0], value[1]
    return None


def _checked_marks(content: dict[str, Any]) -> dict[str, tuple[int, int]] | None:
    """The ``chat`` part of a ``resume``, checked (None without one)."""
    marks = content.get("chat")
    if marks is None:
        return None
    checked = {}
    if isinstance(marks, dict) and len(marks) <= MAX_RESUMED_CONVERSATIONS:
        checked = {key: _mark(value) for key, value in marks.items() if is_uuid(key)}
    if (
        not isinstance(marks, dict)
        or len(checked) != len(marks)
        or not all(mark is not None for mark in checked.values())
    ):
        raise InvalidRequest(
            fields={"chat": _("Send an object of conversation ids to the last seq and rev seen.")}
        )
    return {str(uuid.UUID(key)): mark for key, mark in checked.items()}  # type: ignore[misc]


def resume(*, user: User, content: dict[str, Any]) -> list[dict[str, Any]]:
    """Part of the gateway's ``resume``: with ``"chat": {conversation_id: [last seq seen,
    last rev seen]}``, what changed in those conversations (a close or reopen, the edits and
    deletions of messages already seen, the new messages: ``chat.message`` events), each
    conversation the client did not name (``chat.conversation``), then ``chat.resume.done``
    with the marks to keep and whether more is left (resume again with them)."""
    marks = _checked_marks(content)
    if marks is None:
        return []
    limit = int(getattr(settings, "REALTIME_RESUME_LIMIT", 500))
    found = selectors.resume_changes(
        viewer=user, marks=marks, limit=limit, new_limit=MAX_NEW_CONVERSATIONS
    )
    done = {"more": found.more, "marks": found.marks}
    return [*found.events, {"type": "chat.resume.done", "data": done}]


HANDLERS = {"chat.send": send, "chat.read": read, "chat.typing": typing}
RESUMERS = {"chat": resume}
