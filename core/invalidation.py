"""Cache invalidations that a Redis blip must not lose.

A change is saved first; its cached copies are invalidated after commit (a directory
version bumped, a doctor's schedule deleted). Done in the request only, an invalidation
that met Redis away (a timeout, the breaker open for a few seconds) was dropped with a
warning while the cache came back with the old copies still in it: a rejected or erased
doctor stayed listed, deleted hours bookable-looking, until their entries expired. Here a
failed invalidation is tried again by a task (the database's queue, which the change just
reached), a little later each time, for longer than any entry it invalidates lives.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Literal

from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django_tasks import task

logger = logging.getLogger(__name__)

Op = Literal["delete", "bump"]
# Tried again after 5 s, 10 s, ... 320 s (about 10 min in all): past the 5 min that the
# directory's pages and the schedules are cached for.
ATTEMPTS = 8
FIRST_DELAY = timedelta(seconds=5)


def invalidate_on_commit(op: Op, key: str) -> None:
    """After the current transaction commits (at once outside one): ``delete`` ``key``, or
    ``bump`` the version counter under it; tried again later if the cache fails. Never an
    error: the change is saved, and a Redis outage must neither answer it with a 500 nor
    stop the commit hooks after this one."""
    transaction.on_commit(lambda: _apply_or_later(op, key, 1))


def _apply(op: Op, key: str) -> None:
    if op == "delete":
        cache.delete(key)
        return
    try:
        cache.incr(key)
    except ValueError:  # no version yet (or evicted): any reader's next one is new
        cache.set(key, 2, timeout=None)


def _apply_or_later(op: Op, key: str, attempt: int) -> bool:
    try:
        _apply(op, key)
        return True
    except Exception as exc:
        log = {"op": op, "key": key, "attempt": attempt, "error": type(exc).__name__}
        if attempt >= ATTEMPTS:
            logger.error("cache invalidation given up", extra=log)
            return False
        logger.warning("cache invalidation failed, tried again later", extra=log)
    try:
        delay = FIRST_DELAY * 2 ** (attempt - 1)
        cache_invalidate.using(run_after=timezone.now() + delay).enqueue(op, key, attempt + 1)
    except Exception as exc:  # the database away too: nothing more to be done here
        logger.error(
            "cache invalidation not queued",
            extra={"op": op, "key": key, "error": type(exc).__name__},
        )
    return False


@task()
def cache_invalidate(op: Op, key: str, attempt: int) -> bool:
    """A failed invalidation (:func:`invalidate_on_commit`), tried again."""
    return _apply_or_later(op, key, attempt)
