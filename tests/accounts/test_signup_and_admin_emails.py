"""Addresses that are not what they should be get a 4xx, never a 500: a sign-up with an
invitation code and an e-mail that is not text, and a doctor opened by an admin with an
address verified on another account (a second address of it, in any case)."""

from __future__ import annotations

import logging

import pytest
from allauth.account.models import EmailAddress

from accounts.models import Role, User
from tests.factories import AUTH, bearer, login, make_user, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_access(api) -> str:
    return login(api, make_user(role=Role.ADMIN).email)["access"]


@pytest.mark.parametrize("email", [5, ["doc@example.com"], {"address": "doc@example.com"}])
@pytest.mark.parametrize("language", ["en", "ar"])
def test_an_invited_sign_up_with_an_email_that_is_not_text_is_400(
    api, admin_access, email, language
):
    r = post(api, "/api/v1/admin/invitations", {"email": "doc@example.com"}, **bearer(admin_access))
    assert r.status_code == 201
    code = r.json()["code"]

    r = post(
        api,
        f"{AUTH}/auth/signup",
        {"email": email, "password": "Xx-123456789-long", "invitation_code": code},
        **{"Accept-Language": language},
    )

    assert r.status_code == 400, r.content
    errors = {e["param"]: e for e in r.json()["errors"]}
    assert set(errors) == {"email", "invitation_code"}
    arabic = any("\u0600" <= ch <= "\u06ff" for ch in errors["email"]["message"])
    assert arabic is (language == "ar")
    assert User.objects.filter(role=Role.DOCTOR).count() == 0


@pytest.mark.parametrize("asked", ["second@example.com", "Second@Example.COM"])
def test_an_admin_made_doctor_with_another_accounts_verified_second_address_is_409(
    api, admin_access, asked, caplog
):
    patient = make_user()
    EmailAddress.objects.create(
        user=patient, email="second@example.com", verified=True, primary=False
    )
    caplog.set_level(logging.DEBUG)

    r = post(
        api,
        "/api/v1/admin/doctors",
        {"email": asked, "first_name": "Salma", "last_name": "Aziz"},
        **bearer(admin_access),
    )

    assert r.status_code == 409, r.content
    assert r.json()["error"]["code"] == "auth.email_taken"
    assert not User.objects.filter(email__iexact=asked).exists()
    assert EmailAddress.objects.filter(email__iexact=asked).count() == 1
    assert "second@example.com" not in caplog.text.lower()


def test_an_address_verified_elsewhere_in_another_case_is_taken_too(api, admin_access):
    """allauth's constraint compares spellings; an address stored in capitals (by a path that
    did not lower it) is still the same address."""
    patient = make_user()
    EmailAddress.objects.create(user=patient, email="Mixed@Example.com", verified=True)

    r = post(
        api,
        "/api/v1/admin/doctors",
        {"email": "mixed@example.com", "first_name": "Salma", "last_name": "Aziz"},
        **bearer(admin_access),
    )

    assert r.status_code == 409, r.content
    assert r.json()["error"]["code"] == "auth.email_taken"
    assert not User.objects.filter(email="mixed@example.com").exists()
