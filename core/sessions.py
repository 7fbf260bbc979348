"""Sessions in the database with a cache in front (``cached_db``) that keeps working when the
cache does not, for reads: they fall back to the database, and the cache's copy is written
only if it can be. A change (a sign-in's rotation, a refresh, a sign-out) first drops or
marks the cached copy, and fails loudly when it cannot: Redis back with the copy of before
(after a partition, or restarted from its snapshot) would bring back a signed-out session or
a rotated-out refresh token.

Nor may a read bring an old copy back. Django's ``load()`` reads the row on a cache miss and
then ``set``s it: a change landing between the two was overwritten by the copy of before, for
the session's whole age. Here:

- a read that missed takes a *lease* (``add``: only where nothing is) before it reads the
  row, and fills the cache only if its lease is still there (``core.cache.cache_fill``): any change
  meanwhile replaced or dropped it;
- a save puts its own *changing* mark first (reads meanwhile go to the database and fill
  nothing), writes the row, then puts its data in place of its mark, or drops whatever
  another change put there meanwhile;
- a deletion drops the copy before the row, and again once the deletion commits: a read
  that still saw the row (another connection, before the commit) filled nothing that stays.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.sessions.backends.base import UpdateError
from django.contrib.sessions.backends.cached_db import SessionStore as CachedDBStore
from django.contrib.sessions.backends.db import SessionStore as DBStore
from django.core.cache import caches
from django.db import router, transaction

from core.cache import best_effort, cache_fill, cache_lease, cache_swap

CHANGE_SECONDS = 60  # longer than a save's transaction


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
        self._shared: Any = caches[settings.SESSION_CACHE_ALIAS]
        self._cache: Any = _Forgiving(self._shared)

    def load(self) -> dict[str, Any]:
        key = self.cache_key
        data = self._cache.get(key)
        if isinstance(data, dict):
            return data
        lease = cache_lease(self._shared, key)  # taken before the read: see the docstring
        row = self._get_session_from_db()  # type: ignore[attr-defined]  # untyped
        if row is None:
            return {}
        data = self.decode(row.session_data)
        if lease is not None:
            age = self.get_expiry_age(expiry=row.expire_date)
            cache_fill(self._shared, key, lease, data, age)
        return data

    def exists(self, session_key: str | None) -> bool:
        if not session_key:
            return False
        data = self._cache.get(self.cache_key_prefix + session_key)
        return isinstance(data, dict) or DBStore.exists(self, session_key)  # not a lease or mark

    def save(self, must_create: bool = False) -> None:
        """Also when the session ended during the request (its row deleted: a password
        changed or reset in it, whose new hash another read of the session found stale, or
        a sign-out elsewhere): nothing is saved, it is not brought back, and the request
        goes on (allauth saves the session itself at the end of its views, outside
        Django's middleware, which would have answered 400)."""
        if must_create or self.session_key is None:
            # A brand-new random key (checked unused): no copy of it can be cached, so
            # nothing to mark, and no Redis needed to sign in. Its first read fills it.
            DBStore.save(self, must_create)
            return
        key, mark = self.cache_key, f"session.changing:{uuid.uuid4().hex}"
        self._shared.set(key, mark, CHANGE_SECONDS)  # loud: no change the cache could undo
        try:
            DBStore.save(self, must_create)
        except UpdateError:
            return  # ended: kept ended (no new row: the data would sign its user in again)
        data = self._session  # type: ignore[attr-defined]  # untyped
        best_effort(
            _change_end, self._shared, key, mark, data, self.get_expiry_age(), what="session cache"
        )

    def delete(self, session_key: str | None = None) -> None:
        key = session_key or self.session_key
        if key is None:
            return
        cache_key = self.cache_key_prefix + key
        self._shared.delete(cache_key)  # loud, before the row goes
        DBStore.delete(self, key)
        transaction.on_commit(
            lambda: best_effort(self._shared.delete, cache_key, what="session cache"),
            using=router.db_for_write(self.model),
        )

    # Django's async variants would bypass all of the above: the same code, on a thread.
    async def aload(self) -> dict[str, Any]:
        return await sync_to_async(self.load)()

    async def aexists(self, session_key: str | None) -> bool:
        return await sync_to_async(self.exists)(session_key)

    async def asave(self, must_create: bool = False) -> None:
        await sync_to_async(self.save)(must_create)

    async def adelete(self, session_key: str | None = None) -> None:
        await sync_to_async(self.delete)(session_key)


def _change_end(cache: Any, key: str, mark: str, value: Any, timeout: int) -> None:
    """After the row was written: ``value`` in place of ``mark``; if another change came
    between (its mark, or the data it put), drop it, so the next read takes the row."""
    cache_swap(cache, key, mark, value, timeout, otherwise_drop=True)


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
