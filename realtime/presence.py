"""Presence in Redis: one sorted set per user, a member per open socket (device), scored by
the moment its heartbeat runs out. A user is online while any member's score is in the
future. Heartbeats (``presence.ping``, and connecting) renew a member; closing a socket
removes it. Nothing here is the truth: after a Redis flush a user looks offline until the
next heartbeat, which brings the presence back (and tells the audience again).

Who may see whose presence is not realtime's business: ``AUDIENCE`` is wired by the
composition root (``user id -> ids of the users who may see that user's presence``).
Without ``REDIS_URL`` (embedded defaults, one process) presence lives in process memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

import redis
from django.conf import settings

AUDIENCE: Callable[[Any], list[Any]] | None = None


def ttl_seconds() -> int:
    return int(getattr(settings, "PRESENCE_TTL_SECONDS", 60))


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=1,
        socket_timeout=2,
        max_connections=getattr(settings, "REDIS_MAX_CONNECTIONS", 1000),
    )


def redis_client() -> redis.Redis:
    """A pooled client of ``REDIS_URL`` (presence, counters)."""
    return _client(settings.REDIS_URL)


def _key(user_id: Any) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:presence:{user_id}"


_local: dict[str, dict[str, float]] = {}
_local_lock = threading.Lock()


def heartbeat(*, user_id: Any, device: str) -> bool:
    """Renew one device's presence; True if the user was offline until now."""
    now = time.time()
    expires = now + ttl_seconds()
    if not settings.REDIS_URL:
        with _local_lock:
            devices = {d: t for d, t in _local.get(str(user_id), {}).items() if t > now}
            was_online = bool(devices)
            devices[device] = expires
            _local[str(user_id)] = devices
        return not was_online
    key = _key(user_id)
    pipe = redis_client().pipeline(transaction=True)
    pipe.zremrangebyscore(key, "-inf", now)
    pipe.zcard(key)
    pipe.zadd(key, {device: expires})
    pipe.expire(key, ttl_seconds())
    _, before, _, _ = pipe.execute()
    return before == 0


def leave(*, user_id: Any, device: str) -> bool:
    """Forget one device; True if that was the user's last one (now offline)."""
    now = time.time()
    if not settings.REDIS_URL:
        with _local_lock:
            devices = _local.get(str(user_id), {})
            removed = devices.pop(device, None) is not None
            left = [t for t in devices.values() if t > now]
        return removed and not left
    key = _key(user_id)
    pipe = redis_client().pipeline(transaction=True)
    pipe.zrem(key, device)
    pipe.zremrangebyscore(key, "-inf", now)
    pipe.zcard(key)
    removed, _, left = pipe.execute()
    return bool(removed) and left == 0


def online(user_ids: Iterable[Any]) -> dict[str, bool]:
    ids = [str(u) for u in user_ids]
    now = time.time()
    if not settings.REDIS_URL:
        with _local_lock:
            return {u: any(t > now for t in _local.get(u, {}).values()) for u in ids}
    pipe = redis_client().pipeline(transaction=False)
    for u in ids:
        pipe.zcount(_key(u), f"({now}", "+inf")
    return {u: n > 0 for u, n in zip(ids, pipe.execute(), strict=True)}


def audience(user_id: Any) -> list[str]:
    """The users who may see this user's presence (and whose presence this user may see)."""
    if AUDIENCE is None:
        raise RuntimeError("realtime.presence.AUDIENCE is wired in telemed/apps.py")
    return [str(u) for u in AUDIENCE(user_id)]
