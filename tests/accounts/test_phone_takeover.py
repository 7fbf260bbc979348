"""A phone number as a way into someone else's account: one verified on an account whose
e-mail its owner only took back later (by a password reset or a login by e-mail code), and
codes sent before the number or address stopped being the account's (a change, an erasure)."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client

from accounts import services
from accounts.errors import AccountErased
from accounts.models import User
from audit.models import AuditEvent
from tests.accounts.sms_queue import sent_sms
from tests.accounts.test_phone import capture_sms  # noqa: F401  (autouse: SMS are captured)
from tests.factories import (
    AUTH,
    PASSWORD,
    bearer,
    last_code,
    make_user,
    post,
    reset_password_by_code,
)

pytestmark = pytest.mark.django_db

VICTIM = "victim@example.com"
ATTACKER_PHONE = "+201001234567"


def _signup_verifying_the_phone(email: str, phone: str) -> tuple[Client, str]:
    """Sign up with ``email`` and ``phone`` and verify the phone by its code: the flow then
    waits for the e-mail's code. The client and its session token."""
    client = Client()
    r = post(client, f"{AUTH}/auth/signup", {"email": email, "phone": phone, "password": PASSWORD})
    assert r.status_code == 401, r.json()
    session = r.json()["meta"]["session_token"]
    r = post(
        client,
        f"{AUTH}/auth/phone/verify",
        {"code": last_code(sent_sms())},
        **{"X-Session-Token": session},
    )
    assert {"id": "verify_email", "is_pending": True} in r.json()["data"]["flows"]
    user = User.objects.get(email=email)
    assert (user.phone, user.phone_verified) == (phone, True)
    return client, session


def _code_login(phone: str) -> tuple[Client, str, str]:
    """A login by SMS code asked for ``phone``: the client, its session token and the code."""
    client = Client()
    r = post(client, f"{AUTH}/auth/code/request", {"phone": phone})
    assert r.status_code == 401, r.json()
    return client, r.json()["meta"]["session_token"], last_code(sent_sms())


def _confirm(client: Client, session: str, code: str):
    return post(client, f"{AUTH}/auth/code/confirm", {"code": code}, **{"X-Session-Token": session})


def _attacker_has_no_way_in_by_sms(capture_sms) -> None:  # noqa: F811
    user = User.objects.get(email=VICTIM)
    assert (user.phone, user.phone_verified) == (None, False)
    event = AuditEvent.objects.get(action="user.phone_removed")
    assert event.target_id == str(user.pk) and event.data["was_verified"] is True
    assert ATTACKER_PHONE not in str(event.data)
    capture_sms.clear()
    client = Client()
    r = post(client, f"{AUTH}/auth/code/request", {"phone": ATTACKER_PHONE})
    assert "access_token" not in r.json().get("meta", {})
    assert [m for m in sent_sms() if m.to == ATTACKER_PHONE] == []  # no code to it


# --- 1. the owner takes the address back: the number verified on it goes -----------------


def test_a_password_reset_by_code_drops_the_number_an_address_squatter_verified(capture_sms):  # noqa: F811
    _signup_verifying_the_phone(VICTIM, ATTACKER_PHONE)

    r = reset_password_by_code(VICTIM, "Owners-own-Passw0rd-1")
    assert r.status_code in (200, 401), r.json()
    user = User.objects.get(email=VICTIM)
    assert user.check_password("Owners-own-Passw0rd-1")
    assert EmailAddress.objects.get(user=user).verified is True
    _attacker_has_no_way_in_by_sms(capture_sms)


def test_a_login_by_email_code_drops_the_number_an_address_squatter_verified(capture_sms):  # noqa: F811
    _signup_verifying_the_phone(VICTIM, ATTACKER_PHONE)

    owner = Client()
    r = post(owner, f"{AUTH}/auth/code/request", {"email": VICTIM})
    session = r.json()["meta"]["session_token"]
    r = _confirm(owner, session, last_code())
    assert r.status_code == 200, r.json()
    _attacker_has_no_way_in_by_sms(capture_sms)


def test_the_sign_up_that_verified_its_number_then_its_address_keeps_the_number(capture_sms):  # noqa: F811
    client, session = _signup_verifying_the_phone("nour@example.com", ATTACKER_PHONE)
    r = post(
        client, f"{AUTH}/auth/email/verify", {"key": last_code()}, **{"X-Session-Token": session}
    )
    assert r.status_code == 200, r.json()
    user = User.objects.get(email="nour@example.com")
    assert (user.phone, user.phone_verified) == (ATTACKER_PHONE, True)
    assert not AuditEvent.objects.filter(action="user.phone_removed").exists()
    client, session, code = _code_login(ATTACKER_PHONE)
    assert _confirm(client, session, code).status_code == 200


def test_a_code_login_to_an_account_verified_already_keeps_its_number(capture_sms):  # noqa: F811
    user = make_user(phone=ATTACKER_PHONE, phone_verified=True)
    r = post(Client(), f"{AUTH}/auth/code/request", {"email": user.email})
    r = _confirm(Client(), r.json()["meta"]["session_token"], last_code())
    assert r.status_code == 200, r.json()
    user.refresh_from_db()
    assert (user.phone, user.phone_verified) == (ATTACKER_PHONE, True)


# --- 2. a code sent before the number or address stopped being the account's -------------


def test_an_sms_code_sent_before_a_change_of_number_signs_nobody_in(capture_sms):  # noqa: F811
    user = make_user(phone="+201004444444", phone_verified=True)
    thief, session, code = _code_login("+201004444444")  # the lost phone
    services.user_phone_set(user=User.objects.get(pk=user.pk), phone="+201005555555", verified=True)

    r = _confirm(thief, session, code)
    assert r.status_code == 409, r.json()
    assert r.json()["error"]["code"] == "auth.login_code_stale"
    user.refresh_from_db()
    assert (user.phone, user.phone_verified) == ("+201005555555", True)
    # The pending login ended: the code is not tried again.
    assert "access_token" not in _confirm(thief, session, code).json().get("meta", {})


def test_an_sms_code_sent_before_an_erasure_does_not_bring_the_number_back(capture_sms):  # noqa: F811
    user = make_user(phone="+201003333333", phone_verified=True)
    client, session, code = _code_login("+201003333333")
    services.account_delete(user=User.objects.get(pk=user.pk))

    r = _confirm(client, session, code)
    assert r.status_code == 409, r.json()
    assert "access_token" not in r.json().get("meta", {})
    user.refresh_from_db()
    assert (user.phone, user.phone_verified) == (None, False)


def test_no_number_is_written_to_an_erased_account():
    user = make_user()
    services.account_delete(user=user)
    with pytest.raises(AccountErased):
        services.user_phone_set(user=user, phone="+201006666666", verified=True)
    user.refresh_from_db()
    assert user.phone is None


def test_an_email_code_sent_before_a_change_of_address_signs_nobody_in():
    from allauth.account.models import EmailAddress

    user = make_user(email="old@example.com")
    client = Client()
    r = post(client, f"{AUTH}/auth/code/request", {"email": "old@example.com"})
    session, code = r.json()["meta"]["session_token"], last_code()
    # The owner moved the account to another address (allauth's change flow ends so).
    EmailAddress.objects.filter(user=user).delete()
    EmailAddress.objects.create(user=user, email="new@example.com", primary=True, verified=True)
    User.objects.filter(pk=user.pk).update(email="new@example.com")
    mail.outbox.clear()

    r = _confirm(client, session, code)
    assert r.status_code == 409, r.json()
    assert r.json()["error"]["code"] == "auth.login_code_stale"
    assert "access_token" not in r.json().get("meta", {})


def test_a_reset_code_sent_to_an_address_since_removed_resets_nothing():
    user = make_user(email="old@example.com")
    EmailAddress.objects.create(user=user, email="second@example.com", verified=True)
    client = Client()
    r = post(client, f"{AUTH}/auth/password/request", {"email": "second@example.com"})
    session, code = r.json()["meta"]["session_token"], last_code()
    # The owner lost that mailbox and removed it from the account.
    EmailAddress.objects.filter(user=user, email="second@example.com").delete()

    r = post(
        client,
        f"{AUTH}/auth/password/reset",
        {"key": code, "password": "Another-secret-42"},
        **{"X-Session-Token": session},
    )
    assert r.status_code == 409, r.json()
    assert r.json()["error"]["code"] == "auth.login_code_stale"
    assert "access_token" not in r.json().get("meta", {})
    user.refresh_from_db()
    assert user.check_password(PASSWORD) and not user.check_password("Another-secret-42")
    # The pending reset ended: the code is not tried again.
    r = post(
        client,
        f"{AUTH}/auth/password/reset",
        {"key": code, "password": "Another-secret-42"},
        **{"X-Session-Token": session},
    )
    assert r.status_code == 409, r.json()
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


def test_a_reset_code_to_an_address_still_the_accounts_resets_the_password():
    user = make_user(email="old@example.com")
    EmailAddress.objects.create(user=user, email="second@example.com", verified=True)
    r = reset_password_by_code("second@example.com", "Another-secret-42")
    assert r.status_code in (200, 401), r.json()  # 401: signed in once it verifies the rest
    user.refresh_from_db()
    assert user.check_password("Another-secret-42")


def test_the_stale_code_refusal_is_told_in_arabic(capture_sms):  # noqa: F811
    user = make_user(phone="+201004444444", phone_verified=True)
    client, session, code = _code_login("+201004444444")
    services.user_phone_set(user=User.objects.get(pk=user.pk), phone="+201005555555", verified=True)

    r = post(
        client,
        f"{AUTH}/auth/code/confirm",
        {"code": code},
        **{"X-Session-Token": session, "Accept-Language": "ar"},
    )
    assert r.status_code == 409
    assert any("\u0600" <= ch <= "\u06ff" for ch in r.json()["error"]["message"])


def test_a_reset_left_pending_in_the_session_does_not_stop_a_password_change():
    user = make_user(email="old@example.com")
    EmailAddress.objects.create(user=user, email="second@example.com", verified=True)
    client = Client()
    r = post(client, f"{AUTH}/auth/password/request", {"email": "second@example.com"})
    session = r.json()["meta"]["session_token"]
    r = post(
        client,
        f"{AUTH}/auth/login",
        {"email": "old@example.com", "password": PASSWORD},
        **{"X-Session-Token": session},
    )
    assert r.status_code == 200, r.json()
    access = r.json()["meta"]["access_token"]
    EmailAddress.objects.filter(user=user, email="second@example.com").delete()
    r = post(
        client,
        f"{AUTH}/account/password/change",
        {"current_password": PASSWORD, "new_password": "Another-secret-42"},
        **bearer(access),
    )
    assert r.status_code in (200, 401), r.json()
    user.refresh_from_db()
    assert user.check_password("Another-secret-42")
