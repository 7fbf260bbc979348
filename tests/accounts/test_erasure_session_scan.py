"""Erasure's scan of the stored sessions: exact values only (erasing a@b.com keeps the session
of aa@b.com), unexpired sessions only, after the commit (the user's row is not locked while
every session is read), and a failure of it is logged, without the identifiers, and does not
undo the erasure."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

from accounts.models import User
from accounts.services import account_delete
from core.sessions import SessionStore
from tests.factories import login, make_user

pytestmark = pytest.mark.django_db


def _keys_holding(user: User) -> set[str]:
    store = SessionStore()
    return {
        s.session_key
        for s in Session.objects.all()
        if str(user.pk) in str(store.decode(s.session_data))
    }


def _stored(data: dict, *, expire_in: timedelta = timedelta(days=1)) -> str:
    session = SessionStore()
    session.update(data)
    session.set_expiry(int(expire_in.total_seconds()))
    session.create()
    if expire_in <= timedelta(0):
        Session.objects.filter(session_key=session.session_key).update(
            expire_date=timezone.now() + expire_in
        )
    return str(session.session_key)


def test_erasing_an_address_keeps_the_sessions_of_a_longer_one_that_contains_it(
    api, django_capture_on_commit_callbacks
):
    erased = make_user(email="a@b.com", phone="+20100000001", phone_verified=True)
    kept = make_user(email="aa@b.com", phone="+201000000012", phone_verified=True)
    login(api, erased.email)
    login(api, kept.email)
    theirs = _keys_holding(kept)
    mine = _keys_holding(erased)
    assert len(theirs) == 1 and len(mine) == 1
    # Sign-ins not finished: one for the erased address in capitals (addresses ignore
    # case), one for a longer phone number that starts with the erased one.
    pending_mine = _stored({"pending_login": {"email": "A@B.COM"}})
    pending_theirs = _stored({"pending_login": {"phone": "+201000000012"}})

    with django_capture_on_commit_callbacks(execute=True):
        account_delete(user=erased)

    left = set(Session.objects.values_list("session_key", flat=True))
    assert theirs | {pending_theirs} <= left
    assert not (mine | {pending_mine}) & left


def test_the_scan_runs_after_the_commit_and_reads_no_expired_session(
    django_capture_on_commit_callbacks,
):
    user = make_user(email="rana@example.com")
    live = _stored({"login": "rana@example.com"})
    expired = _stored({"login": "rana@example.com"}, expire_in=-timedelta(minutes=1))

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        account_delete(user=user)
    # Inside the erasure's transaction, no session was read or deleted yet.
    assert Session.objects.filter(session_key=live).exists()
    for callback in callbacks:
        callback()

    assert not Session.objects.filter(session_key=live).exists()
    # An expired session is unusable and left to the housekeeping prune.
    assert Session.objects.filter(session_key=expired).exists()


def test_a_failed_scan_is_logged_without_the_identifiers_and_the_erasure_stands(
    django_capture_on_commit_callbacks, monkeypatch, caplog
):
    user = make_user(email="rana@example.com", phone="+201000000077", phone_verified=True)
    live = _stored({"login": "rana@example.com"})

    def broken(self, session_key=None):
        raise ConnectionError("cache away for rana@example.com")

    monkeypatch.setattr(SessionStore, "delete", broken)
    with caplog.at_level(logging.WARNING), django_capture_on_commit_callbacks(execute=True):
        account_delete(user=user)

    user.refresh_from_db()
    assert user.deleted_at is not None and user.email is None
    assert Session.objects.filter(session_key=live).exists()  # unusable; pruned once expired
    (logged,) = [r for r in caplog.records if "sessions not deleted" in r.getMessage()]
    assert logged.user_id == str(user.pk) and logged.error == "ConnectionError"
    assert "rana" not in caplog.text and "+201000000077" not in caplog.text
