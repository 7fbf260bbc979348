"""Cache invalidations that a Redis blip must not lose.

A change is saved first; its cached copies are invalidated after commit (a directory
version bumped, a doctor's schedule deleted). Done in the request only, an invalidation
that met Redis away (a timeout, the breaker open for a few seconds) was dropped with a
warning while the cache came back with the old copies still in it: a rejected or erased
doctor stayed listed, deleted hours bookable-looking, until their entries expired. Here a
failed invalidation is tried again by a task (the database's queue, which the change just
reached), a little later each time, for longer than any entry it invalidates lives.

What is done to the keys: ``delete`` them, ``bump`` the version counters under them, or an
operation another app names in :data:`OPS` (the unread counters' reset, which also bumps
their generations), registered at start-up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django_tasks import task

logger = logging.getLogger(__name__)

# Operations of other apps on a list of keys, by name (``AppConfig.ready``).
OPS: dict[str, Callable[[list[str]], None]] = {}
# Tried again after 5 s, 10 s, ... 320 s (about 10 min in all): past the 5 min that the
# directory's pages and the schedules are cached for.
ATTEMPTS = 8
FIRST_DELAY = timedelta(seconds=5)


def fresh_version() -> int:
    """A value for a version counter that is missing (never set, or evicted by Redis under
    memory pressure): one no cached copy was stored under. Counting again from 1 would
    bring back the copies stored under the first versions, still alive beside it; the clock
    in nanoseconds is far above any count of bumps since an earlier start."""
    return time.time_ns()


def invalidate_on_commit(op: str, keys: str | list[str]) -> None:
    """After the current transaction commits (at once outside one): ``op`` on ``keys``;
    tried again later if the cache fails. Never an error: the change is saved, and a Redis
    outage must neither answer it with a 500 nor stop the commit hooks after this one."""
    keys = [keys] if isinstance(keys, str) else list(keys)
    transaction.on_commit(lambda: _apply_or_later(op, keys, 1))


def invalidate_later(op: str, keys: list[str]) -> None:
    """``op`` on ``keys`` by a task a little later (then again, until done): for a caller
    whose own write after commit just failed (an unread counter's adjustment)."""
    _later(op, keys, 1)


def _apply(op: str, keys: list[str]) -> None:
    if op == "delete":
        cache.delete_many(keys)
    elif op == "bump":
        for key in keys:
            try:
                cache.incr(key)
            except ValueError:  # no version yet (or evicted)
                cache.set(key, fresh_version(), timeout=None)
    else:
        OPS[op](keys)


def _apply_or_later(op: str, keys: list[str], attempt: int) -> bool:
    try:
        _apply(op, keys)
        return True
    except Exception as exc:
        log = {"op": op, "keys": keys[:5], "attempt": attempt, "error": type(exc).__name__}
        if attempt >= ATTEMPTS:
            logger.error("cache invalidation given up", extra=log)
            return False
        logger.warning("cache invalidation failed, tried again later", extra=log)
    _later(op, keys, attempt)
    return False


def _later(op: str, keys: list[str], attempt: int) -> None:
    try:
        delay = FIRST_DELAY * 2 ** (attempt - 1)
        cache_invalidate.using(run_after=timezone.now() + delay).enqueue(op, keys, attempt + 1)
    except Exception as exc:  # the database away too: nothing more to be done here
        logger.error(
            "cache invalidation not queued",
            extra={"op": op, "keys": keys[:5], "error": type(exc).__name__},
        )


@task()
def cache_invalidate(op: str, keys: list[str], attempt: int) -> bool:
    """A failed invalidation (:func:`invalidate_on_commit`, :func:`invalidate_later`),
    tried again."""
    return _apply_or_later(op, keys, attempt)
