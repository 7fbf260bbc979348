"""Unread counters (notifications now, chat conversations later), cached in Redis.

The database is the truth: ``COUNTERS`` maps a counter's name to the query that rebuilds it
for a user. realtime registers its own (``notifications``); other apps add theirs at the
composition root. A missing key (expired, evicted, Redis flushed) is rebuilt on the next
read; writes adjust an existing key after commit and never create one.

A rebuild races the writes: one that counted before a write's commit and caches after its
adjustment (a no-op on the missing key) would miss that write. So each write, after commit,
also bumps the counter's generation (a key beside it, even when the counter is missing), and
a rebuild caches its count only if the generation it read before counting is still there
(one Lua script with Redis; with the embedded default's in-process cache a check then a
write, not atomic: a best effort for one process). The other way round, a rebuild that
counted after a write's commit and cached before its adjustment counts that write twice: the
TTL bounds how long that stays wrong. A counter that falls below zero is wrong for sure, and
is dropped so that the next read counts again. A write Redis missed (a blip) leaves its keys
to be reset by a task soon after, and again until done (``core.invalidation``, operation
``unread.forget``), so they are rebuilt.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from core.cache import best_effort, default_redis, script_on
from core.invalidation import invalidate_later

logger = logging.getLogger(__name__)
COUNTERS: dict[str, Callable[[Any], int]] = {}


def _key(name: str, user_id: Any) -> str:
    return f"rt:unread:{name}:{user_id}"


def _generation_key(key: str) -> str:
    """The generation of counter ``key``: bumped by every write after its commit."""
    return f"{key}:gen"


# Far longer than a rebuild's count takes: a generation that expired in between (and was
# bumped again from nothing) could look unchanged.
GENERATION_SECONDS = 600


def _ttl() -> int:
    return int(getattr(settings, "UNREAD_CACHE_SECONDS", 300))


def unread_counts(*, user_id: Any) -> dict[str, int]:
    """Each counter, from the cache or rebuilt from the database (and cached again unless a
    write came meanwhile); all from the database while Redis is away (nothing is cached
    then, so a lost Redis costs one failed call, not one per counter)."""
    keys = {name: _key(name, user_id) for name in COUNTERS}
    generations = [_generation_key(key) for key in keys.values()]
    # The generations are read with the counters, before any counting.
    found = best_effort(cache.get_many, [*keys.values(), *generations], what="unread counters")
    counts: dict[str, int] = {}
    for name, key in keys.items():
        if found is not None and isinstance(found.get(key), int) and found[key] >= 0:
            counts[name] = found[key]
            continue
        counts[name] = COUNTERS[name](user_id)
        if found is not None:
            generation = found.get(_generation_key(key))
            best_effort(_store, key, counts[name], generation, what="unread counters")
    return counts


# KEYS: the counter, its generation; ARGV: the generation read before counting ('' for
# none), the count, its seconds. The count is cached only if no write bumped the generation
# since, and only where the counter is missing or wrong (below zero, not a number): another
# rebuild's is as good, and writes since have adjusted it.
_STORE = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then
  return 0
end
local current = tonumber(redis.call('GET', KEYS[1]) or '')
if current ~= nil and current >= 0 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1
"""


def _store(key: str, count: int, generation: Any) -> None:
    """Cache ``count`` (counted after ``generation`` was read) under ``key``, unless a write
    bumped the generation meanwhile (see the module's docstring)."""
    seconds = _ttl()
    if seconds <= 0:
        return
    redis = default_redis()
    if redis is not None:
        client, make_key = redis
        expected = "" if generation is None else str(generation)
        script_on(client, _STORE)(
            keys=[make_key(key), make_key(_generation_key(key))], args=[expected, count, seconds]
        )
        return
    # The in-process cache (one process): checked, then written, not atomically.
    if cache.get(_generation_key(key)) != generation:
        return
    current = cache.get(key)
    if current is not None and not (isinstance(current, int) and current >= 0):
        cache.delete(key)  # below zero: see the module's docstring
    cache.add(key, count, seconds)


# KEYS: the counters, then their generations; ARGV: the delta, the generations' seconds.
# INCRBY each counter that exists (a missing counter stays missing: its rebuild counts the
# rows); one that falls below zero is dropped (see the module's docstring). Every
# generation is bumped, the missing counters' too: a rebuild counting now caches nothing.
_ADJUST = """
local n = #KEYS / 2
for i = 1, n do
  local key = KEYS[i]
  if redis.call('EXISTS', key) == 1 and redis.call('INCRBY', key, ARGV[1]) < 0 then
    redis.call('DEL', key)
  end
  redis.call('INCR', KEYS[n + i])
  redis.call('EXPIRE', KEYS[n + i], ARGV[2])
end
"""

# KEYS: the counters, then their generations; ARGV: the generations' seconds.
_FORGET = """
local n = #KEYS / 2
for i = 1, n do
  redis.call('DEL', KEYS[i])
  redis.call('INCR', KEYS[n + i])
  redis.call('EXPIRE', KEYS[n + i], ARGV[1])
end
"""


def _with_generations(make_key: Callable[[str], str], keys: list[str]) -> list[str]:
    """The Redis names of ``keys``, then of their generations (the scripts' KEYS)."""
    return [make_key(key) for key in keys] + [make_key(_generation_key(key)) for key in keys]


def _bump(keys: list[str]) -> None:
    """The embedded default's generation bump: a new value, never one seen before."""
    cache.set_many({_generation_key(key): uuid.uuid4().hex for key in keys}, GENERATION_SECONDS)


def unread_adjust_on_commit(*, user_ids: list[Any], name: str, delta: int) -> None:
    """After commit, add ``delta`` to these users' cached counters and bump their
    generations: one Redis call for any number of users (a fan-out to 500 users would
    otherwise wait for 1,000 round trips)."""
    keys = [_key(name, user_id) for user_id in user_ids]

    def apply() -> None:
        redis = default_redis()
        if redis is not None:
            client, make_key = redis
            full = _with_generations(make_key, keys)
            script_on(client, _ADJUST)(keys=full, args=[delta, GENERATION_SECONDS])
            return
        _bump(keys)
        for key in keys:
            try:
                if cache.incr(key, delta) < 0:
                    cache.delete(key)
            except ValueError:
                pass  # not cached: the next read rebuilds it from the database

    _on_commit_or_repair(apply, keys)


def unread_forget_on_commit(*, user_id: Any, name: str) -> None:
    unread_forget_many_on_commit(user_ids=[user_id], name=name)


def unread_forget_many_on_commit(*, user_ids: list[Any], name: str) -> None:
    """After commit, drop these users' cached counters and bump their generations (one
    Redis call): the next read counts again."""
    keys = [_key(name, user_id) for user_id in user_ids]
    if keys:
        _on_commit_or_repair(lambda: forget(keys), keys)


def forget(keys: list[str]) -> None:
    """Drop these counters and bump their generations (also ``core.invalidation``'s
    ``unread.forget``): the next read counts again."""
    redis = default_redis()
    if redis is not None:
        client, make_key = redis
        full = _with_generations(make_key, keys)
        script_on(client, _FORGET)(keys=full, args=[GENERATION_SECONDS])
        return
    _bump(keys)
    cache.delete_many(keys)


# The reset a missed write leaves to a task (``core.invalidation``), by this name.
FORGET = "unread.forget"


def _on_commit_or_repair(write: Callable[[], Any], keys: list[str]) -> None:
    """After commit, ``write`` to Redis. If that fails (Redis away or slow), the keys it
    would have changed are reset by a task (a row in the database, so it survives the
    blip) a few seconds later, and again until Redis is back (``core.invalidation``)."""

    def after_commit() -> None:
        try:
            write()
        except Exception as exc:
            logger.warning("unread counters unavailable (%s)", type(exc).__name__)
            invalidate_later(FORGET, keys)

    transaction.on_commit(after_commit)
