"""Expired sessions are deleted (nothing else deletes them): in batches, at most hourly, by
core's housekeeping loop (``tasks_reclaim``)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.utils import timezone

from core import sessions
from core.reclaim import tasks_reclaim
from core.sessions import SessionStore, sessions_prune

pytestmark = pytest.mark.django_db


def _session(expires_in: timedelta) -> str:
    session = SessionStore()
    session["n"] = 1
    session.create()
    Session.objects.filter(session_key=session.session_key).update(
        expire_date=timezone.now() + expires_in
    )
    return str(session.session_key)


def test_the_housekeeping_loop_deletes_expired_sessions_at_most_hourly():
    expired = {_session(-timedelta(minutes=m)) for m in (1, 60, 60 * 24 * 30)}
    live = _session(timedelta(minutes=1))

    tasks_reclaim.call()
    assert set(Session.objects.values_list("session_key", flat=True)) == {live}

    later = _session(-timedelta(minutes=1))
    tasks_reclaim.call()  # within the hour: not again
    assert set(Session.objects.values_list("session_key", flat=True)) == {live, later}
    assert not expired & set(Session.objects.values_list("session_key", flat=True))


def test_the_prune_works_in_bounded_batches(monkeypatch):
    for _ in range(5):
        _session(-timedelta(minutes=1))
    live = _session(timedelta(days=1))
    monkeypatch.setattr(sessions, "PRUNE_BATCH", 2)
    monkeypatch.setattr(sessions, "PRUNE_BATCHES", 2)

    assert sessions_prune(now=timezone.now()) == 4  # a backlog: the rest the next time
    assert sessions_prune(now=timezone.now()) == 1
    assert sessions_prune(now=timezone.now()) == 0
    assert list(Session.objects.values_list("session_key", flat=True)) == [live]


def test_a_session_ended_during_the_request_is_not_saved_back():
    """A password reset in a session that another read found stale (its row deleted) used to
    be a 500 when allauth saved the session at the end of its view; and nothing may bring
    the ended session back."""
    session = SessionStore()
    session["_auth_user_id"] = "someone"
    session.create()
    key = session.session_key
    SessionStore(key).delete()  # ended meanwhile (a password change, a sign-out elsewhere)

    session["n"] = 2
    session.save()  # no error

    assert not Session.objects.filter(session_key=key).exists()
    assert Session.objects.count() == 0
    assert SessionStore(key).load() == {}
