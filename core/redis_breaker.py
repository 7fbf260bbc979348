"""A circuit breaker on our Redis connections: a Redis that hangs costs one timeout, not one
per request.

Redis refusing connections fails at once, and every caller already goes on without it (see
README, "Redis away"). A Redis that stops answering (a paused VM, a full network buffer, a
long ``DEBUG SLEEP``) is worse: each command waits for its socket timeout (2 s), so with a
handful of request threads per process the whole server waits. After a timeout or a
connection error on a server, its breaker opens: for ``REDIS_BREAKER_SECONDS`` every command
to it fails at once with ``ConnectionError``, as if it were down; then the next command tries
it again (and opens the breaker again if it still fails).

Used by the cache's pools (``core/cache.py``) and presence's client; not by the readiness
probe, which must really ask.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from django.conf import settings
from redis.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

_OPEN_UNTIL: dict[tuple[Any, ...], float] = {}
_LOCK = threading.Lock()


def _seconds() -> float:
    return float(getattr(settings, "REDIS_BREAKER_SECONDS", 5.0))


class BreakerOpen(RedisConnectionError):
    """A command not sent: the server timed out or failed moments ago."""


class _Breaker:
    def _breaker_key(self) -> tuple[Any, ...]:
        return (
            getattr(self, "host", None),
            getattr(self, "port", None),
            getattr(self, "path", None),
        )

    def _breaker_check(self) -> None:
        until = _OPEN_UNTIL.get(self._breaker_key())
        if until is not None and time.monotonic() < until:
            raise BreakerOpen("not connecting to Redis: it failed or timed out moments ago")

    def _breaker_trip(self) -> None:
        with _LOCK:
            _OPEN_UNTIL[self._breaker_key()] = time.monotonic() + _seconds()

    def connect(self) -> None:
        self._breaker_check()
        try:
            super().connect()  # type: ignore[misc]
        except (RedisConnectionError, RedisTimeoutError):
            self._breaker_trip()
            raise

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        self._breaker_check()
        try:
            super().send_packed_command(command, check_health)  # type: ignore[misc]
        except BreakerOpen:
            raise
        except (RedisConnectionError, RedisTimeoutError):
            self._breaker_trip()
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)  # type: ignore[misc]
        except (RedisConnectionError, RedisTimeoutError):
            self._breaker_trip()
            raise


class BreakerConnection(_Breaker, Connection):
    pass


class BreakerSSLConnection(_Breaker, SSLConnection):
    pass


class BreakerUnixConnection(_Breaker, UnixDomainSocketConnection):
    pass


def connection_class_for(url: str) -> type[Connection] | type[UnixDomainSocketConnection]:
    """The breaker's connection class for a Redis URL (``from_url`` would otherwise pick
    redis-py's own from the scheme)."""
    if url.startswith("rediss://"):
        return BreakerSSLConnection
    if url.startswith("unix://"):
        return BreakerUnixConnection
    return BreakerConnection
