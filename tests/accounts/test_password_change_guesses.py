"""Guesses of the current password on a password change (what a stolen access token could try)
are few, count as failed logins of the account and are audited as they are."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from allauth.core.internal import ratelimit as allauth_ratelimit
from django.test import Client

from accounts.adapter import login_digest
from audit.models import AuditEvent
from tests.factories import AUTH, PASSWORD, bearer, login, make_user, post

pytestmark = pytest.mark.django_db

CHANGE = f"{AUTH}/account/password/change"
NEW_PASSWORD = "Another-long-pass-77"


def test_wrong_current_passwords_are_limited_counted_as_failed_logins_and_audited(monkeypatch):
    user = make_user()
    token = bearer(login(Client(), user.email)["access"])

    def guess(n: int):
        form = {"current_password": f"guess-{n}-xx", "new_password": NEW_PASSWORD}
        return post(Client(), CHANGE, form, **token)

    answers = [guess(n) for n in range(5)]
    assert [a.status_code for a in answers] == [400] * 5
    assert answers[0].json()["errors"][0]["code"] == "enter_current_password"
    later = time.time() + 120  # allauth's limiter, two minutes on: 5 per 15 minutes
    clock = SimpleNamespace(time=lambda: later, monotonic=time.monotonic, sleep=time.sleep)
    monkeypatch.setattr(allauth_ratelimit, "time", clock)
    assert guess(5).status_code == 429

    failed = AuditEvent.objects.filter(action="auth.login_failed")
    assert failed.count() == 5
    event = failed.first()
    assert event is not None
    assert (event.target_type, event.target_id) == ("user", str(user.pk))
    assert event.data["method"] == "password" and event.data["page"] == "password_change"
    assert event.data["login_digest"] == login_digest(str(user.email))  # never the address

    # The account's failed-login limit (5 in 5 minutes) is used up: its password signs in no more.
    r = post(Client(), f"{AUTH}/auth/login", {"email": user.email, "password": PASSWORD})
    assert r.status_code == 429
    assert r.json()["errors"][0]["code"] == "too_many_login_attempts"


def test_the_right_current_password_is_neither_counted_nor_audited():
    user = make_user()
    token = bearer(login(Client(), user.email)["access"])
    r = post(
        Client(), CHANGE, {"current_password": PASSWORD, "new_password": NEW_PASSWORD}, **token
    )
    assert r.status_code in (200, 401)  # changed (the session ends with the old password)
    assert not AuditEvent.objects.filter(action="auth.login_failed").exists()
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
