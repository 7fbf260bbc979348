"""Limits of the socket gateway: who may open it (origins), how many sockets a user holds,
how deeply a client message may nest."""

from __future__ import annotations

import asyncio
import weakref
from collections import Counter
from typing import Any
from urllib.parse import ParseResult

from channels.security.websocket import AllowedHostsOriginValidator, OriginValidator
from django.conf import settings


class SocketOriginValidator(OriginValidator):
    """Channels' ``AllowedHostsOriginValidator``, plus the CORS allow-list, and one change:
    a handshake without an ``Origin`` header is let through.

    Browsers always send ``Origin`` on a WebSocket handshake, so cross-site socket hijacking
    is still stopped; non-browser clients (mobile apps, the ``Authorization: Bearer`` path of
    the protocol) send none, and must still reach authentication.
    """

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)


def origin_validator(application: Any) -> SocketOriginValidator:
    hosts_validator = AllowedHostsOriginValidator(application)
    allowed = list(hosts_validator.allowed_origins) + list(settings.CORS_ALLOWED_ORIGINS)
    return SocketOriginValidator(application, allowed)


# Per event loop (one per server process): the open sockets of each user, for
# ``REALTIME_MAX_SOCKETS_PER_USER``. Presence's device sets in Redis cannot count them across
# processes: a device there runs out unless its client pings, so a client that never pings
# would not be counted.
_sockets_of: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Counter[str]] = (
    weakref.WeakKeyDictionary()
)


def socket_slot_take(user_id: str) -> bool:
    """Count one more socket of the user on this event loop, unless the user has the most
    allowed already. No ``await`` between the check and the count: two sockets opening at
    once cannot both take the last slot."""
    counts = _sockets_of.setdefault(asyncio.get_running_loop(), Counter())
    if counts[user_id] >= int(getattr(settings, "REALTIME_MAX_SOCKETS_PER_USER", 10)):
        return False
    counts[user_id] += 1
    return True


def socket_slot_free(user_id: str) -> None:
    counts = _sockets_of.get(asyncio.get_running_loop())
    if counts is not None:
        counts[user_id] -= 1
        if counts[user_id] <= 0:
            del counts[user_id]


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than ``limit`` deep in ``value`` (walked without
    recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False
