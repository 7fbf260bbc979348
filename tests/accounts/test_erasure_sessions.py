"""Erasure ends the user's sessions for good: their rows and cached copies hold the e-mail
address allauth signed in with. They are deleted by a task
committed with the erasure (none if it rolls back) that knows the identifiers only as keyed
digests; exact values only (erasing a@b.com keeps the session of aa@b.com); unexpired
sessions only; a failure is retried later with a growing wait, logged without the
identifiers, and raised after the last attempt."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.cache import caches
from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from accounts import tasks
from accounts.models import User
from accounts.services import account_delete
from core.reclaim import RERUNNABLE
from core.sessions import SessionStore
from tests.factories import PASSWORD, bearer, login, make_user, post

pytestmark = pytest.mark.django_db

PATH = tasks.erased_sessions_delete.module_path


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


def _run_waiting() -> list[Any]:
    """Run each waiting deletion task once, as the worker would; what each returned."""
    answers = []
    for row in DBTaskResult.objects.filter(task_path=PATH, status="READY").order_by("enqueued_at"):
        DBTaskResult.objects.filter(id=row.id).update(status="SUCCESSFUL")
        call = row.args_kwargs
        answers.append(tasks.erased_sessions_delete.call(*call["args"], **call["kwargs"]))
    return answers


def _holding(text: str) -> set[str]:
    store = SessionStore()
    return {
        s.session_key
        for s in Session.objects.all()
        if text in str(store.decode(s.session_data)).lower()
    }


def _cached(key: str) -> bool:
    return caches[settings.SESSION_CACHE_ALIAS].get(SessionStore.cache_key_prefix + key) is not None


def test_erasure_deletes_the_users_sessions_and_their_cached_copies(api):
    user = make_user(email="rana@example.com", phone="+201000000007", phone_verified=True)
    other = make_user()
    login(api, other.email)
    login(api, user.email)  # another device
    headers = bearer(login(api, user.email)["access"])
    # A sign-in not finished holds the login tried, not the account.
    pending = SessionStore()
    pending["pending_login"] = {"phone": "+201000000007"}
    pending.create()
    signed_in = _holding(str(user.pk))
    assert len(signed_in) == 2 and signed_in <= _holding("rana@example.com")  # allauth's record
    mine = signed_in | {str(pending.session_key)}
    for key in mine:
        SessionStore(key).load()  # read once: cached
        assert _cached(key)
    theirs = _holding(str(other.pk))
    assert len(theirs) == 1

    r = post(api, "/api/v1/me/delete", {"password": PASSWORD}, **headers)
    assert r.status_code == 204
    assert _run_waiting() == [3]

    assert not Session.objects.filter(session_key__in=mine).exists()
    assert not any(_cached(key) for key in mine)
    assert _holding("rana@example.com") == set()
    assert Session.objects.filter(session_key__in=theirs).count() == 1


def test_erasing_an_address_keeps_the_sessions_of_a_longer_one_that_contains_it(api):
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

    account_delete(user=erased)
    # The erasure only enqueued the task; the sessions go when it runs.
    assert mine <= set(Session.objects.values_list("session_key", flat=True))
    assert _run_waiting() == [2]

    left = set(Session.objects.values_list("session_key", flat=True))
    assert theirs | {pending_theirs} <= left
    assert not (mine | {pending_mine}) & left


def test_the_task_is_committed_with_the_erasure_and_holds_no_identifier_in_clear():
    user = make_user(email="Rana@Example.com", phone="+201000000077", phone_verified=True)
    with pytest.raises(RuntimeError), transaction.atomic():
        account_delete(user=user)
        raise RuntimeError("the erasure's transaction rolls back")
    assert not DBTaskResult.objects.filter(task_path=PATH).exists()

    account_delete(user=User.objects.get(pk=user.pk))
    (row,) = DBTaskResult.objects.filter(task_path=PATH)
    stored = str(row.args_kwargs).lower()
    assert "rana" not in stored and "201000000077" not in stored
    assert row.args_kwargs["args"][0] == str(user.pk)
    assert len(row.args_kwargs["args"][1]) == 3  # the id, the address and the phone
    assert PATH in RERUNNABLE  # a worker that died in it: it runs again


def test_an_expired_session_is_left_to_the_prune():
    user = make_user(email="rana@example.com")
    live = _stored({"login": "rana@example.com"})
    expired = _stored({"login": "rana@example.com"}, expire_in=-timedelta(minutes=1))

    account_delete(user=user)
    assert _run_waiting() == [1]

    assert not Session.objects.filter(session_key=live).exists()
    assert Session.objects.filter(session_key=expired).exists()


def test_a_failure_is_retried_later_logged_without_the_identifiers_and_the_erasure_stands(
    monkeypatch, caplog
):
    user = make_user(email="rana@example.com", phone="+201000000077", phone_verified=True)
    live = _stored({"login": "rana@example.com"})
    real_delete = SessionStore.delete

    def broken(self, session_key=None):
        raise ConnectionError("cache away for rana@example.com")

    monkeypatch.setattr(SessionStore, "delete", broken)
    account_delete(user=user)
    with caplog.at_level(logging.WARNING):
        before = timezone.now()
        assert _run_waiting() == [None]  # the first attempt fails

    user.refresh_from_db()
    assert user.deleted_at is not None and user.email is None
    (retry,) = DBTaskResult.objects.filter(task_path=PATH, status="READY")
    assert retry.args_kwargs["args"][2] == 2
    assert timedelta(seconds=29) < retry.run_after - before < timedelta(seconds=35)
    (logged,) = [r for r in caplog.records if "sessions not deleted" in r.getMessage()]
    assert (logged.user_id, logged.error, logged.attempt) == (str(user.pk), "ConnectionError", 1)
    assert "rana" not in caplog.text and "+201000000077" not in caplog.text

    monkeypatch.setattr(SessionStore, "delete", real_delete)  # the cache is back
    assert _run_waiting() == [1]
    assert not Session.objects.filter(session_key=live).exists()


def test_the_last_attempt_raises_and_enqueues_no_other(monkeypatch, caplog):
    user = make_user(email="rana@example.com")
    _stored({"login": "rana@example.com"})

    def broken(self, session_key=None):
        raise ConnectionError("cache away")

    monkeypatch.setattr(SessionStore, "delete", broken)
    account_delete(user=user)
    (row,) = DBTaskResult.objects.filter(task_path=PATH)
    digests = row.args_kwargs["args"][1]
    with pytest.raises(ConnectionError), caplog.at_level(logging.ERROR):
        tasks.erased_sessions_delete.call(str(user.pk), digests, tasks.SESSIONS_DELETE_ATTEMPTS)
    assert DBTaskResult.objects.filter(task_path=PATH).count() == 1
    assert "given up" in caplog.text


def test_digests_made_before_a_rotation_of_the_secret_still_match(settings):
    user = make_user(email="rana@example.com")
    live = _stored({"login": "rana@example.com"})
    account_delete(user=user)  # the task's digests: under the secret of then

    old = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-new-secret-" + "x" * 40, [old]
    assert _run_waiting() == [1]
    assert not Session.objects.filter(session_key=live).exists()
