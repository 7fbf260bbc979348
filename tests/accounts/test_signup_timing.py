"""A sign-up costs the same whether its e-mail address or number has an account: one
password hash (Argon2 in production: a quarter of a second, which a sign-up that made no
account would otherwise save, telling that the address has one). Counted, not timed."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.hashers import get_hasher
from django.test import Client

from tests.accounts.test_phone import capture_sms  # noqa: F401  (autouse: SMS are captured)
from tests.factories import AUTH, make_user, post

pytestmark = pytest.mark.django_db

TAKEN_EMAIL, TAKEN_PHONE = "taken@example.com", "+201007777777"


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each password the default hasher hashes from now on."""
    hasher = type(get_hasher())
    real = hasher.encode
    seen: list[str] = []

    def encode(self: Any, password: str, salt: str, *args: Any, **kwargs: Any) -> str:
        seen.append(password)
        return real(self, password, salt, *args, **kwargs)

    monkeypatch.setattr(hasher, "encode", encode)
    return seen


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"email": "free@example.com"}, id="new-email"),
        pytest.param({"email": TAKEN_EMAIL}, id="taken-email"),
        pytest.param({"email": "free@example.com", "phone": "+201008888888"}, id="new-phone"),
        pytest.param({"email": "free@example.com", "phone": TAKEN_PHONE}, id="taken-phone"),
        pytest.param({"email": TAKEN_EMAIL, "phone": "+201008888888"}, id="taken-email-phone"),
    ],
)
def test_a_sign_up_hashes_one_password_whether_or_not_it_makes_an_account(
    hashes: list[str], data: dict[str, str]
) -> None:
    make_user(email=TAKEN_EMAIL, phone=TAKEN_PHONE, phone_verified=True)
    hashes.clear()

    r = post(Client(), f"{AUTH}/auth/signup", {**data, "password": "Sup3r-unique-pw-7"})

    assert r.status_code == 401, r.json()  # the same answer each time: a flow to verify
    assert len(hashes) == 1


@pytest.mark.parametrize("phone", [TAKEN_PHONE, "+201009999999"], ids=["taken", "new"])
def test_changing_the_number_while_signing_up_hashes_nothing_either_way(
    hashes: list[str], settings: Any, phone: str
) -> None:
    """Where the sign-up's phone step may change its number (allauth's setting, off here): to
    one with an account or not, no password is hashed (the new path hashes none either)."""
    settings.ACCOUNT_PHONE_VERIFICATION_SUPPORTS_CHANGE = True
    make_user(email=TAKEN_EMAIL, phone=TAKEN_PHONE, phone_verified=True)
    client = Client()
    r = post(
        client,
        f"{AUTH}/auth/signup",
        {"email": "free@example.com", "phone": "+201008888888", "password": "Sup3r-unique-pw-7"},
    )
    session = r.json()["meta"]["session_token"]
    hashes.clear()

    r = post(client, f"{AUTH}/account/phone", {"phone": phone}, **{"X-Session-Token": session})

    assert r.status_code == 202, r.json()
    assert hashes == []
