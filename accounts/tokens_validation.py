"""Validation of access tokens, for REST (``accounts.auth``) and sockets (``realtime.auth``).

The same checks as allauth's stateful JWT validation (signature and expiry, the token's
server-side session still exists, the session belongs to the token's user, the user is active
and the session was made with the user's current password), but cheaper per request:

- the session is read once (allauth reads it twice);
- the user's authentication facts come from a small snapshot in the cache instead of a
  database query. The snapshot is deleted whenever the user is saved (``User.save``), so a
  deactivation, a role change or a password change takes effect at the next request. A
  request that rebuilds it takes a lease first and stores it only if no save dropped the
  lease meanwhile (``core.cache.cache_fill``): a row read just before a deactivation
  cannot be cached just after it, for the snapshot's whole life.
  The full user row is loaded lazily, only by endpoints that use more than those facts,
  by one hand-written statement (the ORM's ``get`` spent two thirds of its 0.3 ms building
  the query).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from allauth.headless.tokens.strategies.jwt import internal
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.core.cache import caches
from django.db import connection
from django.utils.crypto import constant_time_compare
from django.utils.functional import SimpleLazyObject

from core import db
from core.cache import best_effort, cache_fill, cache_lease

SNAPSHOT_SECONDS = 300


@functools.cache
def _user_sql(vendor: str) -> str:
    from accounts.models import User

    return db.select_sql(User, f"{db.names(User, 'id')[1]} = %s")


def _user_row(user_id: Any) -> Any:
    """The user ``user_id`` names, or None."""
    from accounts.models import User

    found = db.fetch(User, _user_sql(connection.vendor), [db.db_value(User, "id", user_id)])
    return found[0] if found else None


def snapshot_key(user_id: Any) -> str:
    return f"auth:user:{user_id}"


@dataclass(frozen=True)
class AuthSnapshot:
    id: str
    is_active: bool
    session_auth_hash: str
    role: str
    language: str
    must_change_password: bool


def _snapshot(user_id: str) -> tuple[AuthSnapshot | None, Any]:
    """The user's snapshot, and the user row if it had to be read to build it (so that the
    request's lazy user does not read it a second time)."""
    key, cache = snapshot_key(user_id), caches["default"]
    found = best_effort(cache.get, key, what="user snapshot")  # Redis away: the row is read
    if isinstance(found, tuple):  # else nothing, or another request's lease
        return AuthSnapshot(*found), None
    lease = cache_lease(cache, key)  # before the read: a save after it voids the lease
    user = _user_row(user_id)
    if user is None:
        return None, None
    snap = AuthSnapshot(
        str(user.pk),
        user.is_active,
        user.get_session_auth_hash(),
        user.role,
        user.language,
        user.must_change_password,
    )
    if lease is not None:
        cache_fill(cache, key, lease, tuple(snap.__dict__.values()), SNAPSHOT_SECONDS)
    return snap, user


def user_snapshot(user_id: str) -> AuthSnapshot | None:
    """What requests check of a user (cached), or ``None`` for no such user."""
    return _snapshot(user_id)[0]


def validate_access_token(token: str) -> tuple[Any, AuthSnapshot] | None:
    """``(lazy user, snapshot)`` for a valid access token of an active user, else ``None``."""
    payload = internal.decode_token(token, "access")
    if payload is None:
        return None
    session = internal.get_token_session(payload)
    if session is None:
        return None
    user_id = session.get(SESSION_KEY)
    if user_id is None or str(user_id) != payload["sub"]:
        return None
    snap, loaded = _snapshot(str(user_id))
    if snap is None or not snap.is_active:
        return None
    session_hash = session.get(HASH_SESSION_KEY)
    if not session_hash or not constant_time_compare(session_hash, snap.session_auth_hash):
        return None

    def load() -> Any:
        from accounts.models import User

        user = loaded if loaded is not None else _user_row(user_id)
        if user is None:  # deleted since the snapshot was read
            raise User.DoesNotExist()
        return user

    return _LazyUser(load), snap


class _LazyUser(SimpleLazyObject):
    """A user loaded on first use. Always truthy, so that "is there an authenticated user?"
    (Ninja asks exactly that) costs no query."""

    def __bool__(self) -> bool:
        return True
