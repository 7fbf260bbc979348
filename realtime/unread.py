"""Unread counters (notifications now, chat conversations later), cached in Redis.

The database is the truth: ``COUNTERS`` maps a counter's name to the query that rebuilds it
for a user. realtime registers its own (``notifications``); other apps add theirs at the
composition root. A missing key (expired, evicted, Redis flushed) is rebuilt on the next
read; writes adjust an existing key after commit and never create one, and a TTL bounds how
long a counter raced by a rebuild can stay wrong (a rebuild that counted after a write's
commit and cached before its adjustment counts that write twice); one that falls below zero
is wrong for sure, and is dropped so that the next read counts again. A write Redis missed (a blip) leaves its keys
to :func:`unread_repair`, a task that deletes them a minute later, so they are rebuilt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django_tasks import task

from core.cache import best_effort, default_redis

logger = logging.getLogger(__name__)
COUNTERS: dict[str, Callable[[Any], int]] = {}


def _key(name: str, user_id: Any) -> str:
    return f"rt:unread:{name}:{user_id}"


def _ttl() -> int:
    return int(getattr(settings, "UNREAD_CACHE_SECONDS", 300))


def unread_counts(*, user_id: Any) -> dict[str, int]:
    """Each counter, from the cache or rebuilt from the database (and cached again); all
    from the database while Redis is away (nothing is cached then, so a lost Redis costs
    one failed call, not one per counter)."""
    keys = {name: _key(name, user_id) for name in COUNTERS}
    found = best_effort(cache.get_many, list(keys.values()), what="unread counters")
    counts: dict[str, int] = {}
    for name, key in keys.items():
        if found is not None and isinstance(found.get(key), int) and found[key] >= 0:
            counts[name] = found[key]
            continue
        counts[name] = COUNTERS[name](user_id)
        if found is not None:
            if key in found:  # below zero: see the module's docstring
                best_effort(cache.delete, key, what="unread counters")
            best_effort(cache.add, key, counts[name], _ttl(), what="unread counters")
    return counts


# INCRBY each key that exists (a missing counter stays missing: its rebuild counts the rows);
# one that falls below zero is dropped (see the module's docstring).
_ADJUST = """
for i, key in ipairs(KEYS) do
  if redis.call('EXISTS', key) == 1 and redis.call('INCRBY', key, ARGV[1]) < 0 then
    redis.call('DEL', key)
  end
end
"""


def unread_adjust_on_commit(*, user_ids: list[Any], name: str, delta: int) -> None:
    """After commit, add ``delta`` to these users' cached counters: one Redis call for any
    number of users (a fan-out to 500 users would otherwise wait for 1,000 round trips)."""
    keys = [_key(name, user_id) for user_id in user_ids]

    def apply() -> None:
        redis = default_redis()
        if redis is not None:
            client, make_key = redis
            full = [make_key(key) for key in keys]
            client.eval(_ADJUST, len(full), *full, delta)
            return
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
    """After commit, drop these users' cached counters (one Redis call): the next read
    counts again."""
    keys = [_key(name, user_id) for user_id in user_ids]
    if keys:
        _on_commit_or_repair(lambda: cache.delete_many(keys), keys)


REPAIR_AFTER = timedelta(seconds=60)


def _on_commit_or_repair(write: Callable[[], Any], keys: list[str]) -> None:
    """After commit, ``write`` to Redis. If that fails (Redis away or slow), the keys it
    would have changed are left to :func:`unread_repair`, a task (a row in the database,
    so it survives the blip) that runs a minute later, when Redis is likely back."""

    def after_commit() -> None:
        try:
            write()
        except Exception as exc:
            logger.warning("unread counters unavailable (%s)", type(exc).__name__)
            best_effort(_repair_later, keys, what="unread counters repair")

    transaction.on_commit(after_commit)


def _repair_later(keys: list[str]) -> None:
    unread_repair.using(run_after=timezone.now() + REPAIR_AFTER).enqueue(keys)


@task()
def unread_repair(keys: list[str]) -> int:
    """Delete counters a write could not adjust: the next read rebuilds them from the
    database. If Redis is still away this fails, and the TTL bounds how long they stay
    wrong."""
    cache.delete_many(keys)
    return len(keys)
