"""Presence in Redis: one sorted set per user, a member per open socket (device), scored by
the moment its heartbeat runs out. A user is online while any member's score is in the
future. Heartbeats (``presence.ping``, and connecting) renew a member; closing a socket
removes it (that socket's process tells the audience). A device that stops without closing
(its process died, its client stopped pinging) runs out instead: :func:`expired` finds the
users whose last device ran out, once each, so that the audience is told then too (an index
sorted set holds each user's latest expiry). Nothing here is the truth: after a Redis flush a user looks offline until the
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

from core.redis_breaker import connection_class_for

AUDIENCE: Callable[[Any], list[Any]] | None = None


def ttl_seconds() -> int:
    return int(getattr(settings, "PRESENCE_TTL_SECONDS", 60))


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        connection_class=connection_class_for(url),
        socket_connect_timeout=1,
        socket_timeout=2,
        max_connections=getattr(settings, "REDIS_MAX_CONNECTIONS", 1000),
    )


def redis_client() -> redis.Redis:
    """A pooled client of ``REDIS_URL`` (presence, counters)."""
    return _client(settings.REDIS_URL)


def _key(user_id: Any) -> str:
    return f"{settings.REDIS_KEY_PREFIX}:presence:{user_id}"


def _index_key() -> str:
    return f"{settings.REDIS_KEY_PREFIX}:presence-index"


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
    pipe.expire(key, ttl_seconds() * 2)  # kept past the run-out, for :func:`expired`
    pipe.zadd(_index_key(), {str(user_id): expires}, gt=True)
    _, before, _, _, _ = pipe.execute()
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


# Users due in the index: drop their run-out devices; a user left with none whose devices ran
# out (rather than left: ``leave`` already told) is returned once, and leaves the index; a
# user with a live device gets its latest expiry back as its score.
_EXPIRED = """
local gone = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, user in ipairs(due) do
  local key = ARGV[2] .. user
  local ran_out = redis.call('ZREMRANGEBYSCORE', key, '-inf', ARGV[1])
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if #last == 0 then
    redis.call('ZREM', KEYS[1], user)
    if ran_out > 0 then table.insert(gone, user) end
  else
    redis.call('ZADD', KEYS[1], last[2], user)
  end
end
return gone
"""


def expired(*, limit: int = 1000) -> list[str]:
    """The users whose last device ran out since the last call, each returned once (to one
    caller, whichever process asks first): they are offline and nobody was told."""
    now = time.time()
    if not settings.REDIS_URL:
        with _local_lock:
            gone = [
                u
                for u, devices in _local.items()
                if devices and all(t <= now for t in devices.values())
            ][:limit]
            for u in gone:
                del _local[u]
        return gone
    prefix = f"{settings.REDIS_KEY_PREFIX}:presence:"
    found = redis_client().eval(_EXPIRED, 1, _index_key(), now, prefix, limit)
    return [u.decode() if isinstance(u, bytes) else str(u) for u in found]


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
