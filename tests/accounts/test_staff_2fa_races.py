"""The admin site's failure limit (per address and per client IP, shared by the login form and
the enrolment page) holds under parallel requests: each attempt is counted before its password
or code is checked, and a right one gives its attempt back."""

from __future__ import annotations

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice
from redis.commands.core import BasicKeyCommands
from redis.exceptions import ResponseError

from accounts import otp
from accounts.models import Role, User
from audit.models import AuditEvent
from tests.threads import run_together

ENROL = "/admin/otp/enrol/"
LOGIN = "/admin/login/"
PASSWORD = "Correct-horse-battery-9"
PARALLEL = 16


def make_staff() -> User:
    return User.objects.create_user(
        email="staff-race@example.com", password=PASSWORD, role=Role.ADMIN
    )


def checked(page: str, method: str) -> int:
    """Wrong passwords or codes actually checked (each is audited)."""
    return AuditEvent.objects.filter(
        action="auth.login_failed", data__page=page, data__method=method
    ).count()


@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_passwords_on_the_enrolment_page_stop_at_the_limit():
    user = make_staff()
    limit, _window = otp.PASSWORD_FAILURES_PER_EMAIL

    def guess(n: int) -> int:
        form = {"step": "password", "email": user.email, "password": f"wrong-{n}-password"}
        return Client().post(ENROL, form).status_code

    statuses, errors = run_together(PARALLEL, guess)
    assert errors == []
    assert sorted(statuses) == [200] * limit + [429] * (PARALLEL - limit)
    assert checked("enrol", "password") == limit


@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_passwords_on_the_admin_login_stop_at_the_limit():
    user = make_staff()
    limit, _window = otp.PASSWORD_FAILURES_PER_EMAIL

    def guess(n: int) -> int:
        form = {"username": user.email, "password": f"wrong-{n}-password", "otp_token": "123456"}
        return Client().post(LOGIN, form).status_code

    statuses, errors = run_together(PARALLEL, guess)
    assert errors == []
    assert sorted(statuses) == [200] * limit + [429] * (PARALLEL - limit)
    assert checked("login", "password") == limit


@pytest.mark.django_db(transaction=True)
def test_parallel_wrong_codes_with_the_right_password_stop_at_the_limit():
    """The code step counts against the same limit (django-otp also locks the device and
    throttles it: most of these are refused by its throttling, none checked twice at once)."""
    user = make_staff()
    TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    limit, _window = otp.PASSWORD_FAILURES_PER_EMAIL

    def guess(n: int) -> int:
        form = {"username": user.email, "password": PASSWORD, "otp_token": f"{n:06d}"}
        return Client().post(LOGIN, form).status_code

    statuses, errors = run_together(PARALLEL, guess)
    assert errors == []
    assert sorted(statuses) == [200] * limit + [429] * (PARALLEL - limit)
    assert checked("login", "totp") == limit


@pytest.mark.django_db
def test_a_right_password_does_not_use_the_limit_up():
    user = make_staff()
    limit, _window = otp.PASSWORD_FAILURES_PER_EMAIL
    for _ in range(limit + 1):
        response = Client().post(
            ENROL, {"step": "password", "email": user.email, "password": PASSWORD}
        )
        assert response.status_code == 302
    for _ in range(limit):
        response = Client().post(
            ENROL, {"step": "password", "email": user.email, "password": "wrong-password-1"}
        )
        assert response.status_code == 200
    response = Client().post(ENROL, {"step": "password", "email": user.email, "password": PASSWORD})
    assert response.status_code == 429


@pytest.mark.django_db
def test_the_limit_counts_on_redis_6(monkeypatch):
    """Redis 6 answers ``EXPIRE ... NX`` (Redis 7's) with an error, which was a 500 for every
    attempt: the count and its window are set by ``core.ratelimit.add``'s script, which
    Redis 6 runs. (The client here refuses the flag as Redis 6 would.)"""
    expire = BasicKeyCommands.expire

    def expire_as_redis_6(self, name, time, nx=False, xx=False, gt=False, lt=False):
        if nx or xx or gt or lt:
            raise ResponseError("wrong number of arguments for 'expire' command")
        return expire(self, name, time)

    monkeypatch.setattr(BasicKeyCommands, "expire", expire_as_redis_6)
    user = make_staff()
    limit, _window = otp.PASSWORD_FAILURES_PER_EMAIL
    form = {"username": user.email, "password": "wrong-password-1", "otp_token": "123456"}
    statuses = [Client().post(LOGIN, form).status_code for _ in range(limit + 1)]
    assert statuses == [200] * limit + [429]
