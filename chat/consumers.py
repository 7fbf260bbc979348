"""Chat's socket messages, registered with the gateway at the composition root
(``realtime.consumers.HANDLERS``): each calls the same service as its REST endpoint, so the
checks, the errors (as ``error`` events) and the live pushes are the same."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _

from accounts.models import User
from chat import selectors, services
from core.errors import InvalidRequest
from core.ids import is_uuid
from core.pagination import InvalidCursor, decode_cursor, encode_cursor


def send(*, user: User, content: dict[str, Any]) -> dict[str, Any]:
    """``chat.send`` -> ``chat.ack`` with the stored message (its ``seq``); the same
    ``client_id`` again gets the same acknowledgement. Without ``text``, as over REST, the
    text is empty: a message of attachments alone."""
    data = services.message_send(
        user=user,
        conversation_id=content.get("conversation_id"),
        text=content.get("text", ""),
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
# The signing scope of ``chat.resume.done``'s cursor (a cursor of another list is refused).
CURSOR_SCOPE = "chat.resume"


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _mark(value: Any) -> tuple[int, int | None] | None:
    """A conversation's mark: ``[last seq seen, last rev seen]``, or the last seq alone (the
    first protocol's, from a client that knows nothing of edits: rev None, read as the
    conversation's own, so no earlier change is sent again and the new messages come at
    once, after the conversation's state if it was ever closed)."""
    if _count(value):
        return value, None
    if isinstance(value, list) and len(value) == 2 and all(_count(v) for v in value):
        return value[0], value[1]
    return None


def _checked_marks(content: dict[str, Any]) -> dict[str, tuple[int, int | None]] | None:
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


def _list_place(cursor: Any, user: User) -> tuple[selectors.ListPlace | None, bool]:
    """Where the ``chat_cursor`` of a ``resume`` says the conversations not named go on:
    ``(place, done)``; null starts from the most recent. Only a cursor this server signed for
    this user passes (else ``request.invalid_cursor``: resume with null)."""
    if cursor is None:
        return None, False
    if not isinstance(cursor, str):
        raise InvalidCursor()
    owner, place = decode_cursor(cursor, scope=CURSOR_SCOPE)
    if owner != str(user.pk):
        raise InvalidCursor()
    if place is None:  # every conversation of the list was sent
        return None, True
    if not (isinstance(place, list) and len(place) == 2 and all(isinstance(v, str) for v in place)):
        raise InvalidCursor()
    try:
        at = datetime.fromisoformat(place[0])
    except ValueError as exc:
        raise InvalidCursor() from exc
    if at.tzinfo is None or not is_uuid(place[1]):
        raise InvalidCursor()
    return (at, uuid.UUID(place[1])), False


def _cursor(user: User, place: selectors.ListPlace | None) -> str:
    return encode_cursor(
        [str(user.pk), [place[0].isoformat(), str(place[1])] if place else None],
        scope=CURSOR_SCOPE,
    )


def resume(*, user: User, content: dict[str, Any]) -> list[dict[str, Any]]:
    """Part of the gateway's ``resume``: with ``"chat": {conversation_id: [last seq seen,
    last rev seen]}``, what changed in those conversations (a close or reopen, the edits and
    deletions of messages already seen, the new messages: ``chat.message`` events), the
    conversations the client did not name (``chat.conversation``, a page of them), then
    ``chat.resume.done`` with the marks to keep, both read markers of each conversation it
    named (``reads``: a read while it was away moved neither ``seq`` nor ``rev``), whether
    more is left, and (for a client that sent ``chat_cursor``: null the first time) the
    cursor to send back for the rest.

    A client that sends no ``chat_cursor`` (the earlier protocol) gets the first page of the
    conversations it did not name in every round; ``more`` counts the others only while it
    can name this page next time (it moves on by naming them): past the most it may name it
    could never reach them by resuming and would resume for ever, so it pages the list."""
    marks = _checked_marks(content)
    if marks is None:
        return []
    paging = "chat_cursor" in content
    list_after, list_done = _list_place(content.get("chat_cursor"), user)
    limit = int(getattr(settings, "REALTIME_RESUME_LIMIT", 500))
    found = selectors.resume_changes(
        viewer=user,
        marks=marks,
        limit=limit,
        new_limit=MAX_NEW_CONVERSATIONS,
        list_after=list_after,
        list_done=list_done,
    )
    done: dict[str, Any] = {"more": found.more, "marks": found.marks, "reads": found.reads}
    if paging:
        more = found.more or found.list_next is not None
        # While more is left, the cursor keeps the list's place, or says it was all sent.
        done = {**done, "more": more, "cursor": _cursor(user, found.list_next) if more else None}
    elif found.list_next is not None and len(marks) + MAX_NEW_CONVERSATIONS <= (
        MAX_RESUMED_CONVERSATIONS
    ):
        done["more"] = True  # it names this page next time, and gets the next one
    return [*found.events, {"type": "chat.resume.done", "data": done}]


HANDLERS = {"chat.send": send, "chat.read": read, "chat.typing": typing}
RESUMERS = {"chat": resume}
