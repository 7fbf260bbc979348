"""Erasure ends the user's sessions for good: their rows and cached copies hold the e-mail
address allauth signed in with."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.cache import caches

from core.sessions import SessionStore
from tests.factories import PASSWORD, bearer, login, make_user, post

pytestmark = pytest.mark.django_db


def holding(text: str) -> set[str]:
    store = SessionStore()
    return {
        s.session_key
        for s in Session.objects.all()
        if text in str(store.decode(s.session_data)).lower()
    }


def cached(key: str) -> bool:
    return caches[settings.SESSION_CACHE_ALIAS].get(SessionStore.cache_key_prefix + key) is not None


def test_erasure_deletes_the_users_sessions_and_their_cached_copies(
    api, django_capture_on_commit_callbacks
):
    user = make_user(email="rana@example.com", phone="+201000000007", phone_verified=True)
    other = make_user()
    login(api, other.email)
    login(api, user.email)  # another device
    headers = bearer(login(api, user.email)["access"])
    # A sign-in not finished holds the login tried, not the account.
    pending = SessionStore()
    pending["pending_login"] = {"phone": "+201000000007"}
    pending.create()
    signed_in = holding(str(user.pk))
    assert len(signed_in) == 2 and signed_in <= holding("rana@example.com")  # allauth's record
    mine = signed_in | {str(pending.session_key)}
    for key in mine:
        SessionStore(key).load()  # read once: cached
        assert cached(key)
    theirs = holding(str(other.pk))
    assert len(theirs) == 1

    with django_capture_on_commit_callbacks(execute=True):  # the scan runs after the commit
        r = post(api, "/api/v1/me/delete", {"password": PASSWORD}, **headers)
    assert r.status_code == 204

    assert not Session.objects.filter(session_key__in=mine).exists()
    assert not any(cached(key) for key in mine)
    assert holding("rana@example.com") == set()
    assert Session.objects.filter(session_key__in=theirs).count() == 1
