"""A phone number typed in other scripts' digits (Arabic-Indic, full-width) is the same number
as in ASCII digits: stored, texted, looked up and limited as one."""

from __future__ import annotations

import pytest

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


def test_signing_in_by_password_with_the_number_in_other_digits(api):
    user = make_user(phone=PHONE, phone_verified=True)
    r = post(api, f"{AUTH}/auth/login", {"phone": MIXED, "password": PASSWORD})
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
