"""One-time socket tickets: a browser cannot set headers on a WebSocket handshake, so it asks
``POST /api/v1/realtime/ticket`` (authenticated) for a ticket and opens
``/ws/v1/?ticket=...``. A ticket is random, lives in the cache (Redis when configured) for
``REALTIME_TICKET_SECONDS``, and is consumed by its first use. Only its hash is a cache key,
and it is never logged. It remembers the session of the token it was asked with: a ticket of
a session that has since ended (logout, password change) opens nothing."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.cache import cache


def ticket_seconds() -> int:
    return int(getattr(settings, "REALTIME_TICKET_SECONDS", 30))


def _key(ticket: str) -> str:
    return "rt:ticket:" + hashlib.sha256(ticket.encode()).hexdigest()


def ticket_issue(*, user_id: Any, session_key: str) -> str:
    ticket = secrets.token_urlsafe(32)
    cache.set(_key(ticket), (str(user_id), session_key), timeout=ticket_seconds())
    return ticket


def ticket_redeem(ticket: str) -> tuple[str, str] | None:
    """The user id the ticket was issued to and the session it was asked in, once: of two
    concurrent redeemers only the one whose delete removed the key wins."""
    if not ticket or len(ticket) > 200:
        return None
    key = _key(ticket)
    found = cache.get(key)
    if found is None or not cache.delete(key):
        return None
    if not isinstance(found, tuple) or len(found) != 2:
        return None  # issued by a server of the previous release (a user id alone): ask again
    user_id, session_key = found
    return str(user_id), str(session_key)


_TICKET_IN_TEXT = re.compile(r"(ticket=)[^&\s\"']+")


def _redacted(value: Any) -> Any:
    """``value`` with any ticket in it replaced: a string that names one is rewritten, any
    other value whose text names one becomes that text, redacted; every other value keeps
    its type (a ``%d`` in the format needs its number)."""
    if isinstance(value, str):
        return _TICKET_IN_TEXT.sub(r"\1[redacted]", value) if "ticket=" in value else value
    if isinstance(value, int | float):
        return value
    text = str(value)
    return _TICKET_IN_TEXT.sub(r"\1[redacted]", text) if "ticket=" in text else value


class RedactTickets(logging.Filter):
    """ASGI servers log a socket's path with its query string (Uvicorn: ``"WebSocket
    /ws/v1/?ticket=..." [accepted]``): the ticket is replaced before any handler sees it. Only
    the arguments that name a ticket change; the others keep their types (Uvicorn's access
    line formats its status with ``%d``), and arguments given by name stay a mapping."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, Mapping):
            record.args = {key: _redacted(value) for key, value in args.items()}
        elif isinstance(args, tuple):
            record.args = tuple(_redacted(value) for value in args)
        if isinstance(record.msg, str) and "ticket=" in record.msg:
            record.msg = _TICKET_IN_TEXT.sub(r"\1[redacted]", record.msg)
        return True


# The loggers that print request paths (the access log, off by default, too).
PATH_LOGGERS = ("uvicorn.error", "uvicorn.access", "daphne.access", "django.channels.server")
