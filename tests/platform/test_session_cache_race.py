"""A read that missed the cache cannot put back a copy of a session (or of a user's auth
snapshot) that a change replaced while the read was in the database (core/sessions.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.core.cache import caches

from core.sessions import SessionStore
from tests.factories import AUTH, bearer, login, make_user, post

pytestmark = pytest.mark.django_db

LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


@pytest.fixture(params=["redis", "locmem"])
def session_cache(request: Any, settings: Any) -> str:
    """Redis (with its scripts), and the embedded default's cache API."""
    if request.param == "locmem":
        settings.CACHES = LOCMEM
    return str(request.param)


def _only_session() -> Session:
    [row] = Session.objects.all()
    return row


def _cached(session_key: str) -> Any:
    return caches["default"].get(SessionStore.cache_key_prefix + session_key)


@contextmanager
def _between_read_and_cache(
    monkeypatch: Any, target: Any, name: str, change: Callable[[], None]
) -> Iterator[list[bool]]:
    """``target.name`` (a read from the database) runs ``change`` once, right after its
    first read: the change lands between a cache miss's read and its write to the cache."""
    real = getattr(target, name)
    ran: list[bool] = []

    def read(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        if not ran:
            ran.append(True)
            change()
        return found

    monkeypatch.setattr(target, name, read)
    yield ran


def test_a_read_racing_a_refresh_cannot_bring_back_the_rotated_out_refresh_token(
    api, monkeypatch, session_cache
):
    user = make_user()
    tokens = login(api, user.email)
    key = _only_session().session_key
    caches["default"].delete(SessionStore.cache_key_prefix + key)  # the next read misses
    rotated: dict[str, str] = {}

    def refresh() -> None:
        r = post(api, f"{AUTH}/tokens/refresh", {"refresh_token": tokens["refresh"]})
        assert r.status_code == 200, r.content
        rotated.update(r.json()["data"])

    with _between_read_and_cache(monkeypatch, SessionStore, "_get_session_from_db", refresh) as ran:
        assert api.get("/api/v1/me", headers=bearer(tokens["access"])).status_code == 200
    assert ran
    r = post(api, f"{AUTH}/tokens/refresh", {"refresh_token": rotated["refresh_token"]})
    assert r.status_code == 200, r.content  # the new one works (the stale copy lacked it)
    r = post(api, f"{AUTH}/tokens/refresh", {"refresh_token": tokens["refresh"]})
    assert r.status_code == 400  # the rotated-out one does not


def test_a_read_racing_a_sign_out_cannot_bring_the_session_back(api, monkeypatch, session_cache):
    user = make_user()
    tokens = login(api, user.email)
    key = _only_session().session_key
    caches["default"].delete(SessionStore.cache_key_prefix + key)

    def sign_out() -> None:
        r = api.delete(f"{AUTH}/auth/session", headers=bearer(tokens["access"]))
        assert r.status_code == 401, r.content  # allauth: signed out
        assert not Session.objects.filter(session_key=key).exists()

    with _between_read_and_cache(monkeypatch, SessionStore, "_get_session_from_db", sign_out):
        api.get("/api/v1/me", headers=bearer(tokens["access"]))  # began before the sign-out
    assert api.get("/api/v1/me", headers=bearer(tokens["access"])).status_code == 401
    assert not isinstance(_cached(key), dict)


def test_a_read_of_a_deletion_not_yet_committed_does_not_stay_cached(
    monkeypatch, session_cache, django_capture_on_commit_callbacks
):
    """Another connection sees the row until the deletion commits, and may cache it then:
    the deletion drops the cached copy again once it commits."""
    store = SessionStore()
    store["n"] = 1
    store.create()
    key = str(store.session_key)
    before = Session.objects.get(session_key=key)  # as another connection still sees it
    with django_capture_on_commit_callbacks(execute=True):
        SessionStore(key).delete()
        with monkeypatch.context() as m:
            m.setattr(SessionStore, "_get_session_from_db", lambda self: before)
            assert SessionStore(key).load() == {"n": 1}  # the deletion is not committed
    assert not isinstance(_cached(key), dict)
    assert SessionStore(key).load() == {}
    assert not SessionStore().exists(key)


def test_a_cache_miss_still_fills_the_cache_and_a_save_updates_it(api, session_cache):
    user = make_user()
    tokens = login(api, user.email)
    key = _only_session().session_key
    caches["default"].delete(SessionStore.cache_key_prefix + key)
    assert api.get("/api/v1/me", headers=bearer(tokens["access"])).status_code == 200
    assert isinstance(_cached(key), dict)  # filled by the read, under its lease
    store = SessionStore(key)
    store["marked"] = "yes"
    store.save()
    assert _cached(key)["marked"] == "yes"  # the save's data replaced its own mark
    assert SessionStore(key).load()["marked"] == "yes"


def test_a_read_racing_a_deactivation_cannot_cache_the_active_snapshot(api, monkeypatch):
    """The auth snapshot (accounts/tokens_validation.py) is filled the same way."""
    import accounts.tokens_validation as tv
    from accounts.models import User

    user = make_user()
    token = login(api, user.email)["access"]
    caches["default"].delete(tv.snapshot_key(user.pk))

    def deactivate() -> None:
        row = User.objects.get(pk=user.pk)
        row.is_active = False
        row.save()  # drops the snapshot: nothing there yet but the rebuild's lease

    with _between_read_and_cache(monkeypatch, tv, "_user_row", deactivate) as ran:
        api.get("/api/v1/me", headers=bearer(token))  # began before the deactivation
    assert ran
    assert api.get("/api/v1/me", headers=bearer(token)).status_code == 401
    cached = caches["default"].get(tv.snapshot_key(user.pk))
    assert cached is None or not tv.AuthSnapshot(*cached).is_active
