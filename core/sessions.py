"""Sessions in the database with a cache in front (``cached_db``) that keeps working when the
cache does not, for reads: they fall back to the database, and the cache's copy is written
only if it can be. A change (a sign-in's rotation, a refresh, a sign-out) first drops the
cached copy, and fails loudly when it cannot: Redis back with the copy of before (after a
partition, or restarted from its snapshot) would bring back a signed-out session or a
rotated-out refresh token."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.backends.cached_db import SessionStore as CachedDBStore
from django.core.cache import caches

from core.cache import best_effort


class _Forgiving:
    """The session cache, whose reads and writes only save work."""

    def __init__(self, cache: Any) -> None:
        self._cache = cache

    def get(self, key: str, default: Any = None) -> Any:
        return best_effort(self._cache.get, key, default, what="session cache")

    def set(self, key: str, value: Any, timeout: Any = None) -> None:
        best_effort(self._cache.set, key, value, timeout, what="session cache")

    def __contains__(self, key: str) -> bool:
        return bool(best_effort(self._cache.has_key, key, what="session cache"))

    def __getattr__(self, name: str) -> Any:  # delete, and the async methods: as they are
        return getattr(self._cache, name)


class SessionStore(CachedDBStore):
    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._cache: Any = _Forgiving(caches[settings.SESSION_CACHE_ALIAS])

    def save(self, must_create: bool = False) -> None:
        """Also when the session ended during the request (its row deleted: a password
        changed or reset in it, whose new hash another read of the session found stale, or
        a sign-out elsewhere): nothing is saved, it is not brought back, and the request
        goes on (allauth saves the session itself at the end of its views, outside
        Django's middleware, which would have answered 400)."""
        if self.session_key is not None:
            self._cache.delete(self.cache_key)  # loud: no change the cache could undo
        try:
            super().save(must_create)
        except UpdateError:
            pass  # ended: kept ended (no new row: the data would sign its user in again)

    def delete(self, session_key: str | None = None) -> None:
        key = session_key or self.session_key
        if key is not None:
            self._cache.delete(self.cache_key_prefix + key)  # loud, before the row goes
        super().delete(session_key)


PRUNE_BATCH = 1000  # session rows deleted per statement
PRUNE_BATCHES = 10  # statements per call: a backlog is worked off over several calls


def sessions_prune(*, now: datetime) -> int:
    """Delete, in batches, the sessions that expired before ``now``, as Django's
    ``clearsessions`` command does (nothing else ever deletes them); how many. A session
    renewed meanwhile is kept (its expiry is checked again). Their cached copies expire with
    them."""
    from django.contrib.sessions.models import Session

    expired = Session.objects.filter(expire_date__lt=now)
    deleted = 0
    for _ in range(PRUNE_BATCHES):
        keys = list(expired.values_list("session_key", flat=True)[:PRUNE_BATCH])
        if keys:
            deleted += expired.filter(session_key__in=keys).delete()[0]
        if len(keys) < PRUNE_BATCH:
            break
    return deleted
