"""Phone numbers: sign-up with a phone verified by SMS code, login by SMS code, lock-outs."""

import pytest
from django.core import mail
from django.test import Client

from accounts.models import User
from core import sms
from tests.accounts.sms_queue import sent_sms
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
PHONE = "+201001234567"


@pytest.fixture(autouse=True)
def capture_sms(settings):
    settings.SMS_PROVIDER = "capture"
    sms.outbox.clear()
    yield sms.outbox
    sms.outbox.clear()


def test_phone_sign_up_then_login_by_sms_code(api, capture_sms):
    r = post(
        api,
        f"{AUTH}/auth/signup",
        {"email": "phone@example.com", "phone": PHONE, "password": PASSWORD},
    )
    assert r.status_code == 401
    assert {"id": "verify_phone", "is_pending": True} in r.json()["data"]["flows"]
    session = r.json()["meta"]["session_token"]
    assert sent_sms()[-1].to == PHONE
    r = post(
        api,
        f"{AUTH}/auth/phone/verify",
        {"code": last_code(capture_sms)},
        **{"X-Session-Token": session},
    )
    assert r.status_code == 401
    assert {"id": "verify_email", "is_pending": True} in r.json()["data"]["flows"]
    r = post(api, f"{AUTH}/auth/email/verify", {"key": last_code()}, **{"X-Session-Token": session})
    assert r.status_code == 200

    user = User.objects.get(email="phone@example.com")
    assert (user.phone, user.phone_verified) == (PHONE, True)

    sent_before = len(capture_sms)
    r = post(api, f"{AUTH}/auth/code/request", {"phone": PHONE})
    assert r.status_code == 401
    assert len(sent_sms()) == sent_before + 1
    assert capture_sms[-1].to == PHONE
    session = r.json()["meta"]["session_token"]
    r = post(
        api,
        f"{AUTH}/auth/code/confirm",
        {"code": last_code(capture_sms)},
        **{"X-Session-Token": session},
    )
    assert r.status_code == 200
    me = api.get("/api/v1/me", headers=bearer(r.json()["meta"]["access_token"]))
    assert me.json()["phone"] == PHONE


def test_sms_code_is_in_the_users_language(api, capture_sms):
    make_user(phone=PHONE, phone_verified=True, language="ar")
    post(api, f"{AUTH}/auth/code/request", {"phone": PHONE})
    assert any("\u0600" <= ch <= "\u06ff" for ch in sent_sms()[-1].body)


def _phone_user():
    return make_user(phone=PHONE, phone_verified=True)


def test_three_wrong_codes_lock_the_code(api, capture_sms):
    _phone_user()
    r = post(api, f"{AUTH}/auth/code/request", {"phone": PHONE})
    session = r.json()["meta"]["session_token"]
    good = last_code(sent_sms())
    wrong = "000000" if good != "000000" else "111111"
    for _ in range(3):
        r = post(api, f"{AUTH}/auth/code/confirm", {"code": wrong}, **{"X-Session-Token": session})
        assert r.status_code in (400, 409)
    r = post(api, f"{AUTH}/auth/code/confirm", {"code": good}, **{"X-Session-Token": session})
    assert r.status_code != 200
    assert "access_token" not in r.json().get("meta", {})


def test_requesting_codes_too_fast_gives_429_with_retry_after(api, capture_sms):
    _phone_user()
    statuses = [
        post(api, f"{AUTH}/auth/code/request", {"phone": PHONE}).status_code for _ in range(4)
    ]
    assert statuses == [401, 401, 401, 429]
    r = post(api, f"{AUTH}/auth/code/request", {"phone": PHONE})
    assert r.status_code == 429
    assert int(r["Retry-After"]) > 0
    assert len(sent_sms()) <= 3


def test_email_login_code(api):
    user = make_user()
    r = post(api, f"{AUTH}/auth/code/request", {"email": user.email})
    session = r.json()["meta"]["session_token"]
    assert mail.outbox
    r = post(
        api, f"{AUTH}/auth/code/confirm", {"code": last_code()}, **{"X-Session-Token": session}
    )
    assert r.status_code == 200
    assert r.json()["meta"]["access_token"]


def test_repeated_failed_logins_are_throttled(api):
    user = make_user()
    statuses = [
        post(
            api, f"{AUTH}/auth/login", {"email": user.email, "password": f"wrong-{i}-pass"}
        ).status_code
        for i in range(7)
    ]
    assert statuses[:5] == [400] * 5
    assert statuses[5:] == [429, 429]
    r = post(api, f"{AUTH}/auth/login", {"email": user.email, "password": PASSWORD})
    assert r.status_code == 429  # locked out even with the right password
    assert r["Retry-After"] == "60"
    assert "access_token" not in r.json().get("meta", {})


def test_sms_provider_down_gives_503_in_the_envelope_for_ones_own_new_number(api, settings):
    """Changing one's own number texts the code at once (nothing to hide from its owner): a
    provider that is down is told. (A login or sign-up code is texted by the task worker, the
    same for any number: tests/accounts/test_sms_enumeration.py.)"""
    from tests.procs import free_port

    user = make_user()
    access = post(api, f"{AUTH}/auth/login", {"email": user.email, "password": PASSWORD}).json()[
        "meta"
    ]["access_token"]
    r = post(api, f"{AUTH}/auth/reauthenticate", {"password": PASSWORD}, **bearer(access))
    assert r.status_code == 200, r.json()
    settings.SMS_PROVIDER = "twilio"
    settings.TWILIO_ACCOUNT_SID = "AC" + "0" * 32
    settings.TWILIO_AUTH_TOKEN = "token"
    settings.TWILIO_FROM_NUMBER = "+15005550006"
    settings.TWILIO_API_BASE_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    sms._provider.cache_clear()
    try:
        r = post(api, f"{AUTH}/account/phone", {"phone": PHONE}, **bearer(access))
    finally:
        sms._provider.cache_clear()
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "auth.sms_unavailable"


def test_wrong_passwords_for_one_number_do_not_lock_another_out():
    """allauth counts failed logins per e-mail address; by phone each number has its own
    count too, not one shared by every number."""
    make_user(phone="+201001111111", phone_verified=True)
    make_user(phone="+201002222222", phone_verified=True)
    stranger = Client(REMOTE_ADDR="198.51.100.7")
    statuses = [
        post(
            stranger, f"{AUTH}/auth/login", {"phone": "+201001111111", "password": f"wrong-{i}-pw"}
        ).status_code
        for i in range(6)
    ]
    assert statuses == [400] * 5 + [429]  # that number's own limit still holds

    owner = Client(REMOTE_ADDR="203.0.113.9")
    r = post(owner, f"{AUTH}/auth/login", {"phone": "+201002222222", "password": PASSWORD})
    assert r.status_code == 200, r.json()


def test_a_password_reset_clears_the_failed_logins_of_the_accounts_number_too():
    user = make_user(phone=PHONE, phone_verified=True)
    for i in range(5):
        post(Client(), f"{AUTH}/auth/login", {"phone": PHONE, "password": f"wrong-{i}-pw"})
    r = post(Client(), f"{AUTH}/auth/login", {"phone": PHONE, "password": PASSWORD})
    assert r.status_code == 429

    r = reset_password_by_code(user.email, "Another-Passw0rd-77")
    assert r.status_code in (200, 401), r.json()

    r = post(Client(), f"{AUTH}/auth/login", {"phone": PHONE, "password": "Another-Passw0rd-77"})
    assert r.status_code == 200, r.json()


def test_failed_logins_are_counted_per_account_whichever_login_was_tried():
    """Five wrong passwords in all, by address or by number, lock the account's every login:
    counted per login, an address and a number gave twice the guesses."""
    user = make_user(phone=PHONE, phone_verified=True)
    stranger = Client(REMOTE_ADDR="198.51.100.8")
    email = str(user.email)
    tried = [{"email": email}, {"phone": PHONE}] * 2 + [{"email": email.upper()}]
    statuses = [
        post(stranger, f"{AUTH}/auth/login", {**login, "password": f"wrong-{i}-pw"}).status_code
        for i, login in enumerate(tried)
    ]
    assert statuses == [400] * 5
    for login in ({"phone": PHONE}, {"email": email}):
        r = post(
            Client(REMOTE_ADDR="203.0.113.10"),
            f"{AUTH}/auth/login",
            {**login, "password": PASSWORD},
        )
        assert r.status_code == 429, r.json()
    # A login that is nobody's is still counted on its own, and locks no account.
    other = make_user()
    for i in range(5):
        post(stranger, f"{AUTH}/auth/login", {"email": "nobody@example.com", "password": f"w-{i}"})
    r = post(Client(), f"{AUTH}/auth/login", {"email": other.email, "password": PASSWORD})
    assert r.status_code == 200, r.json()
