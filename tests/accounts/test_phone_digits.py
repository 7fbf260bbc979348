"""A phone number typed in other scripts' digits (Arabic-Indic, full-width) is the same number
as in ASCII digits: stored, texted, looked up and limited as one."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as django_apps

from accounts.models import User
from core import sms
from tests.accounts.sms_queue import sent_sms
from tests.factories import AUTH, PASSWORD, bearer, last_code, login, make_user, post

pytestmark = pytest.mark.django_db

PHONE = "+201001234567"
ARABIC = "+" + "".join(chr(0x660 + int(d)) for d in PHONE[1:])  # +٢٠١٠٠١٢٣٤٥٦٧
MIXED = PHONE[:2] + ARABIC[2:]  # +2٠١٠٠١٢٣٤٥٦٧: only the first digit in ASCII
FULL_WIDTH = "+" + "".join(chr(0xFF10 + int(d)) for d in PHONE[1:])


@pytest.fixture(autouse=True)
def capture_sms(settings):
    settings.SMS_PROVIDER = "capture"
    sms.outbox.clear()
    yield
    sms.outbox.clear()


@pytest.mark.parametrize(
    "typed", [ARABIC, MIXED, FULL_WIDTH], ids=["arabic", "mixed", "full-width"]
)
def test_a_sign_up_stores_and_texts_the_number_in_ascii_digits(api, typed):
    r = post(
        api, f"{AUTH}/auth/signup", {"email": "x@example.com", "phone": typed, "password": PASSWORD}
    )
    assert r.status_code == 401, r.json()
    user = User.objects.get(email="x@example.com")
    assert (user.phone, user.phone_verified) == (PHONE, False)
    assert [m.to for m in sent_sms()] == [PHONE]


def test_another_spelling_of_a_verified_number_is_that_number(api):
    make_user(phone=PHONE, phone_verified=True)
    r = post(
        api,
        f"{AUTH}/auth/signup",
        {"email": "x@example.com", "phone": ARABIC, "password": PASSWORD},
    )
    assert r.status_code == 401
    assert not User.objects.filter(email="x@example.com").exists()  # as for the number in ASCII
    assert [m.to for m in sent_sms()] == []


@pytest.mark.parametrize(
    "typed", [ARABIC, MIXED, FULL_WIDTH], ids=["arabic", "mixed", "full-width"]
)
def test_signing_in_by_password_with_the_number_in_other_digits(api, typed):
    """allauth's login input checks E.164 with its own field (an ASCII first digit): the
    number is spelled in ASCII before allauth reads the body (``accounts.middleware``)."""
    user = make_user(phone=PHONE, phone_verified=True)
    r = post(api, f"{AUTH}/auth/login", {"phone": typed, "password": PASSWORD})
    assert r.status_code == 200, r.json()
    assert r.json()["data"]["user"]["id"] == str(user.pk)


def test_signing_in_by_code_with_the_number_wholly_in_arabic_indic_digits(api):
    user = make_user(phone=PHONE, phone_verified=True)
    r = post(api, f"{AUTH}/auth/code/request", {"phone": ARABIC})
    assert r.status_code == 401, r.json()
    assert [m.to for m in sent_sms()] == [PHONE]
    session = {"X-Session-Token": r.json()["meta"]["session_token"]}
    r = post(api, f"{AUTH}/auth/code/confirm", {"code": last_code(sent_sms())}, **session)
    assert r.status_code == 200, r.json()
    assert r.json()["data"]["user"]["id"] == str(user.pk)


def test_codes_to_one_number_are_limited_whatever_its_digits(api):
    make_user(phone=PHONE, phone_verified=True)
    spellings = (PHONE, MIXED, FULL_WIDTH, ARABIC)
    answers = [post(api.__class__(), f"{AUTH}/auth/code/request", {"phone": p}) for p in spellings]
    # allauth's request_login_code: 3 a minute per number, one number's count.
    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    assert [m.to for m in sent_sms()] == [PHONE] * 3


def test_a_change_of_number_in_other_digits_verifies_and_stores_it_in_ascii(api):
    user = make_user()
    access = login(api, user.email)["access"]
    assert (
        post(
            api, f"{AUTH}/auth/reauthenticate", {"password": PASSWORD}, **bearer(access)
        ).status_code
        == 200
    )
    r = post(api, f"{AUTH}/account/phone", {"phone": ARABIC}, **bearer(access))
    assert r.status_code == 202, r.json()
    assert [m.to for m in sent_sms()] == [PHONE]
    r = post(api, f"{AUTH}/auth/phone/verify", {"code": last_code(sms.outbox)}, **bearer(access))
    assert r.status_code == 200, r.json()
    user.refresh_from_db()
    assert (user.phone, user.phone_verified) == (PHONE, True)


# --- Numbers stored in other digits before (migration accounts.0003) ----------------------

migration = importlib.import_module("accounts.migrations.0003_phone_ascii_digits")
FULL_WIDTH_MIXED = PHONE[:2] + FULL_WIDTH[2:]  # +2０１...: another spelling allauth took


def rewrite_stored_numbers() -> None:
    migration.phones_in_ascii_digits(django_apps, None)


def state(user: User) -> tuple[str | None, bool]:
    user.refresh_from_db()
    return user.phone, user.phone_verified


def test_a_number_stored_in_other_digits_is_rewritten_and_signs_in_again(api):
    user = make_user(phone=MIXED, phone_verified=True)
    unverified = make_user(phone="+2" + ARABIC[2:-1] + "٨")  # +201001234568, never verified
    rewrite_stored_numbers()
    assert state(user) == (PHONE, True)
    assert state(unverified) == (PHONE[:-1] + "8", False)
    r = post(api, f"{AUTH}/auth/login", {"phone": PHONE, "password": PASSWORD})
    assert r.status_code == 200, r.json()
    assert r.json()["data"]["user"]["id"] == str(user.pk)


def test_a_number_verified_in_ascii_stays_its_owners():
    owner = make_user(phone=PHONE, phone_verified=True)
    other = make_user(phone=MIXED, phone_verified=True)
    rewrite_stored_numbers()
    assert state(owner) == (PHONE, True)
    assert state(other) == (PHONE, False)  # in ASCII: the constraint keeps it the owner's


def test_a_number_verified_in_two_other_spellings_is_nobodys():
    first = make_user(phone=MIXED, phone_verified=True)
    second = make_user(phone=FULL_WIDTH_MIXED, phone_verified=True)
    rewrite_stored_numbers()
    assert state(first) == (PHONE, False)
    assert state(second) == (PHONE, False)


def test_an_unverified_ascii_spelling_takes_nothing_from_a_verified_one():
    unverified = make_user(phone=PHONE)
    owner = make_user(phone=MIXED, phone_verified=True)
    rewrite_stored_numbers()
    assert state(owner) == (PHONE, True)
    assert state(unverified) == (PHONE, False)
