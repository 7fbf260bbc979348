"""Unread counters (notifications now, chat conversations later), cached in Redis.

The database is the truth: ``COUNTERS`` maps a counter's name to the query that rebuilds it
for a user. realtime registers its own (``notifications``); other apps add theirs at the
composition root. A missing key (expired, evicted, Redis flushed) is rebuilt on the next
read; writes adjust an existing key after commit and never create one, and a TTL bounds how
long a counter raced by a rebuild can stay wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from core.cache import best_effort, default_redis

COUNTERS: dict[str, Callable[[Any], int]] = {}


def _key(name: str, user_id: Any) -> str:
    return f"rt:unread:{name}:{user_id}"


def _ttl() -> int:
    return int(getattr(settings, "UNREAD_CACHE_SECONDS", 3600))


def unread_counts(*, user_id: Any) -> dict[str, int]:
    """Each counter, from the cache or rebuilt from the database (and cached again); all
    from the database while Redis is away (nothing is cached then, so a lost Redis costs
    one failed call, not one per counter)."""
    keys = {name: _key(name, user_id) for name in COUNTERS}
    found = best_effort(cache.get_many, list(keys.values()), what="unread counters")
    counts: dict[str, int] = {}
    for name, key in keys.items():
        if found is not None and key in found:
            counts[name] = int(found[key])
            continue
        counts[name] = COUNTERS[name](user_id)
        if found is not None:
            best_effort(cache.add, key, counts[name], _ttl(), what="unread counters")
    return counts


# INCRBY each key that exists (a missing counter stays missing: its rebuild counts the rows).
_ADJUST = "for i, key in ipairs(KEYS) do if redis.call('EXISTS', key) == 1 then redis.call('INCRBY', key, ARGV[1]) end end"


def unread_adjust_on_commit(*, user_ids: list[Any], name: str, delta: int) -> None:
    """After commit, add ``delta`` to these users' cached counters: one Redis call for any
    number of users (a fan-out to 500 users would otherwise wait for 1,000 round trips)."""

    def apply() -> None:
        keys = [_key(name, user_id) for user_id in user_ids]
        redis = default_redis()
        if redis is not None:
            client, make_key = redis
            full = [make_key(key) for key in keys]
            client.eval(_ADJUST, len(full), *full, delta)
            return
        for key in keys:
            try:
                cache.incr(key, delta)
            except ValueError:
                pass  # not cached: the next read rebuilds it from the database

    transaction.on_commit(lambda: best_effort(apply, what="unread counters"))


def unread_forget_on_commit(*, user_id: Any, name: str) -> None:
    transaction.on_commit(
        lambda: best_effort(cache.delete, _key(name, user_id), what="unread counters")
    )
