"""Text that cannot be stored (a lone surrogate: valid JSON, no UTF-8) sent to allauth's
endpoints is refused with 400 in allauth's error format, as our API refuses it with 422,
rather than a 500 from Argon2, PyJWT or psycopg."""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import User
from tests.factories import AUTH, PASSWORD, bearer, login, make_user

pytestmark = pytest.mark.django_db

LONE = "\\ud800"  # as JSON escapes it
NEW_PASSWORD = "Another-long-pass-77"

CASES = {  # path, body, the field named, signed in
    "login": (
        "/auth/login",
        '{"email": "%(email)s", "password": "%(bad)sabc-42"}',
        "password",
        False,
    ),
    "login by phone": (
        "/auth/login",
        '{"phone": "+201001234567", "password": "%(bad)s"}',
        "password",
        False,
    ),
    "signup password": (
        "/auth/signup",
        '{"email": "n1@example.com", "password": "%(bad)s"}',
        "password",
        False,
    ),
    "signup first name": (
        "/auth/signup",
        '{"email": "n2@example.com", "password": "Zx-very-long-pass-9", "first_name": "%(bad)sAli"}',
        "first_name",
        False,
    ),
    "signup invitation": (
        "/auth/signup",
        '{"email": "n3@example.com", "password": "Zx-very-long-pass-9", "invitation_code": "%(bad)s"}',
        "invitation_code",
        False,
    ),
    "reauthenticate": ("/auth/reauthenticate", '{"password": "%(bad)sabc-42"}', "password", True),
    "change password, current": (
        "/account/password/change",
        '{"current_password": "%(bad)sabc", "new_password": "' + NEW_PASSWORD + '"}',
        "current_password",
        True,
    ),
    "change password, new": (
        "/account/password/change",
        '{"current_password": "' + PASSWORD + '", "new_password": "%(bad)sLong-pass-42"}',
        "new_password",
        True,
    ),
    "token refresh": ("/tokens/refresh", '{"refresh_token": "%(bad)s"}', "refresh_token", False),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_lone_surrogate_is_refused_with_400_in_allauths_format(case):
    path, body, field, signed_in = CASES[case]
    user = make_user()
    headers = bearer(login(Client(), user.email)["access"]) if signed_in else {}
    r = Client(raise_request_exception=False).post(
        AUTH + path,
        body % {"email": user.email, "bad": LONE},
        content_type="application/json",
        headers=headers,
    )
    assert r.status_code == 400, r.content
    assert r.json() == {
        "status": 400,
        "errors": [
            {
                "message": "Remove the characters that cannot be stored from this text.",
                "code": "invalid",
                "param": field,
            }
        ],
    }
    assert not User.objects.filter(email__startswith="n").exists()  # no sign-up went through
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_the_refusal_is_translated_and_a_nul_is_refused_too():
    r = Client().post(
        f"{AUTH}/auth/login",
        '{"email": "a@example.com", "password": "abc\\u0000def"}',
        content_type="application/json",
        headers={"Accept-Language": "ar"},
    )
    assert r.status_code == 400
    assert r.json()["errors"] == [
        {"message": "يجب ألا يحتوي النص على محارف NUL.", "code": "invalid", "param": "password"}
    ]


def test_a_body_that_is_not_json_is_still_allauths_to_answer():
    r = Client().post(f"{AUTH}/auth/login", b"\xff{", content_type="application/json")
    assert r.status_code == 400
