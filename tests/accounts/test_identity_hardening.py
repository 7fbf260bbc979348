"""Identity hardening: phone changes, reauthentication, admin login limits, stale saves,
reactivation, allauth's raised rate limits, unverified phones, pending password changes,
erasure attempts, audit of code failures and Google sign-ups."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth.hashers import make_password
from django.core import mail
from django.db.models.signals import pre_save
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services
from accounts.models import PatientProfile, Role, User
from audit.models import AuditEvent
from core import sms
from tests.accounts import test_staff_2fa as twofa
from tests.accounts.sms_queue import sent_sms
from tests.accounts.test_google import _id_token, _sign_in, google_certs, google_key  # noqa: F401
from tests.accounts.test_phone import capture_sms  # noqa: F401  (autouse: SMS are captured)
from tests.factories import AUTH, PASSWORD, bearer, last_code, login, make_user, post

pytestmark = pytest.mark.django_db

OLD_PHONE = "+201001110001"
NEW_PHONE = "+201001110002"


def _is_arabic(text: str) -> bool:
    return any("\u0600" <= ch <= "\u06ff" for ch in text)


def _reauthenticate(api: Client, access: str) -> None:
    r = post(api, f"{AUTH}/auth/reauthenticate", {"password": PASSWORD}, **bearer(access))
    assert r.status_code == 200, r.json()


def _request_phone_change(api: Client, access: str, phone: str) -> None:
    _reauthenticate(api, access)
    r = post(api, f"{AUTH}/account/phone", {"phone": phone}, **bearer(access))
    assert r.status_code == 202, r.json()
    assert sms.outbox[-1].to == phone


@pytest.fixture
def verified_phone_user() -> User:
    return make_user(phone=OLD_PHONE, phone_verified=True)


@pytest.fixture
def admin_access(api: Client) -> str:
    admin = make_user(role=Role.ADMIN)
    return login(api, admin.email)["access"]


@pytest.fixture
def phone_taken_on_save() -> Iterator[User]:
    """Another account that gets ``NEW_PHONE`` verified just before a user's phone is saved:
    what a concurrent request would do between allauth's check and our write."""
    other = make_user()

    def take(sender: Any, instance: User, update_fields: Any = None, **kwargs: Any) -> None:
        if instance.pk != other.pk and update_fields and "phone" in update_fields:
            User.objects.filter(pk=other.pk).update(phone=NEW_PHONE, phone_verified=True)

    pre_save.connect(take, sender=User, dispatch_uid="test-phone-taken")
    yield other
    pre_save.disconnect(sender=User, dispatch_uid="test-phone-taken")


# --- 1. changing the phone number -------------------------------------------------------


def test_changed_phone_replaces_the_old_one_which_no_longer_signs_in(api, verified_phone_user):
    access = login(api, verified_phone_user.email)["access"]
    _request_phone_change(api, access, NEW_PHONE)
    r = post(api, f"{AUTH}/auth/phone/verify", {"code": last_code(sms.outbox)}, **bearer(access))
    assert r.status_code == 200, r.json()

    verified_phone_user.refresh_from_db()
    assert (verified_phone_user.phone, verified_phone_user.phone_verified) == (NEW_PHONE, True)
    assert AuditEvent.objects.filter(
        action="user.phone_verified", target_id=str(verified_phone_user.pk)
    ).exists()
    sent = len(sms.outbox)
    post(api, f"{AUTH}/auth/code/request", {"phone": OLD_PHONE})
    assert len(sent_sms()) == sent  # the old number is nobody's: no code goes to it


def test_phone_verified_elsewhere_during_the_change_is_409(
    api, verified_phone_user, phone_taken_on_save
):
    access = login(api, verified_phone_user.email)["access"]
    _request_phone_change(api, access, NEW_PHONE)
    r = post(api, f"{AUTH}/auth/phone/verify", {"code": last_code(sms.outbox)}, **bearer(access))
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "auth.phone_taken"
    verified_phone_user.refresh_from_db()
    assert (verified_phone_user.phone, verified_phone_user.phone_verified) == (OLD_PHONE, True)


# --- 2. reauthentication for address changes --------------------------------------------


def test_stolen_access_token_cannot_add_an_email_address(api):
    user = make_user()
    access = login(api, user.email)["access"]
    mail.outbox.clear()
    r = post(api, f"{AUTH}/account/email", {"email": "attacker@example.com"}, **bearer(access))
    assert r.status_code == 401
    assert {"id": "reauthenticate"} in r.json()["data"]["flows"]
    assert not EmailAddress.objects.filter(email="attacker@example.com").exists()
    assert mail.outbox == []
    r = post(api, f"{AUTH}/account/phone", {"phone": NEW_PHONE}, **bearer(access))
    assert r.status_code == 401
    assert sms.outbox == []


def test_owner_reauthenticates_changes_email_and_the_old_address_is_told(api):
    user = make_user(email="owner@example.com")
    access = login(api, user.email)["access"]
    _reauthenticate(api, access)
    r = post(api, f"{AUTH}/account/email", {"email": "new-owner@example.com"}, **bearer(access))
    assert r.status_code == 200, r.json()
    assert mail.outbox[-1].to == ["new-owner@example.com"]
    r = post(api, f"{AUTH}/auth/email/verify", {"key": last_code()}, **bearer(access))
    assert r.status_code == 200, r.json()

    user.refresh_from_db()
    assert user.email == "new-owner@example.com"
    assert mail.outbox[-1].to == ["owner@example.com"]  # "your e-mail address was changed"
    assert "new-owner@example.com" in str(mail.outbox[-1].body)


# --- 3. the admin login form ------------------------------------------------------------


def test_admin_login_gives_one_answer_for_a_wrong_password_or_a_wrong_code():
    staff = twofa.make_user()
    key = twofa.enrol(Client(), staff)
    right = twofa.token_at(key, time.time())
    wrong = "000000" if right != "000000" else "111111"

    bad_code = twofa.admin_login(Client(), staff.email, token=wrong)
    bad_password = twofa.admin_login(
        Client(), staff.email, token=right, password="Wrong-password-1"
    )
    assert bad_code.status_code == bad_password.status_code == 200
    errors = [r.context["form"].non_field_errors() for r in (bad_code, bad_password)]
    assert errors[0] == errors[1] == ["Please enter a correct e-mail address, password and code."]


def test_admin_login_failures_are_limited_per_address():
    staff = twofa.make_user()
    key = twofa.enrol(Client(), staff)
    client = Client()
    limit = twofa.otp.PASSWORD_FAILURES_PER_EMAIL[0]
    for i in range(limit):
        r = twofa.admin_login(client, staff.email, token="123456", password=f"Wrong-pw-{i}")
        assert r.status_code == 200
    r = twofa.admin_login(client, staff.email, token=twofa.token_at(key, time.time()))
    assert r.status_code == 429  # locked out even with the right password and code
    assert client.get("/admin/").status_code == 302


# --- 4. stale instances do not undo concurrent changes -----------------------------------


def test_profile_update_with_a_stale_user_keeps_a_concurrent_password_reset():
    stale = make_user()
    reset = make_password("Reset-in-between-1")
    User.objects.filter(pk=stale.pk).update(password=reset, role=Role.DOCTOR)
    services.profile_update(user=stale, changes={"first_name": "Nour"})
    fresh = User.objects.get(pk=stale.pk)
    assert (fresh.first_name, fresh.password, fresh.role) == ("Nour", reset, Role.DOCTOR)


def test_admin_update_with_a_stale_user_keeps_a_concurrent_deactivation():
    admin = make_user(role=Role.ADMIN)
    stale = make_user()
    User.objects.filter(pk=stale.pk).update(is_active=False, must_change_password=True)
    services.user_update_by_admin(actor=admin, user=stale, changes={"last_name": "Said"})
    fresh = User.objects.get(pk=stale.pk)
    assert (fresh.last_name, fresh.is_active, fresh.must_change_password) == ("Said", False, True)


# --- 5. deactivation ends sessions for good; erased accounts stay erased -----------------


def test_reactivation_does_not_bring_old_tokens_back(api, admin_access):
    user = make_user()
    tokens = login(api, user.email)
    for action in ("deactivate", "reactivate"):
        r = api.post(f"/api/v1/admin/users/{user.id}/{action}", headers=bearer(admin_access))
        assert r.status_code == 200
    assert api.get("/api/v1/me", headers=bearer(tokens["access"])).status_code == 401
    r = post(api, f"{AUTH}/tokens/refresh", {"refresh_token": tokens["refresh"]})
    assert r.status_code == 400
    fresh = login(api, user.email)  # the owner signs in again
    assert api.get("/api/v1/me", headers=bearer(fresh["access"])).status_code == 200


def test_an_erased_account_is_not_reactivated(api, admin_access):
    user = make_user()
    services.account_delete(user=user)
    r = api.post(
        f"/api/v1/admin/users/{user.id}/reactivate",
        headers={**bearer(admin_access), "Accept-Language": "ar"},
    )
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "auth.account_erased"
    assert _is_arabic(r.json()["error"]["message"])
    user.refresh_from_db()
    assert user.is_active is False


# --- 6. allauth's raised rate limits ----------------------------------------------------


@pytest.mark.parametrize("language", ["en", "ar"])
def test_phone_code_limit_raised_by_allauth_is_429_in_the_envelope(api, language):
    for n in range(2):
        r = post(
            api,
            f"{AUTH}/auth/signup",
            {"email": f"twin{n}@example.com", "phone": NEW_PHONE, "password": PASSWORD},
            **{"Accept-Language": language},
        )
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "request.rate_limited"
    assert int(r["Retry-After"]) > 0
    assert _is_arabic(r.json()["error"]["message"]) is (language == "ar")
    assert len(sent_sms()) == 1


# --- 7 and 11. an unverified number claims nothing ----------------------------------------


def _sign_up_with_phone(api: Client, email: str, phone: str) -> Any:
    return post(api, f"{AUTH}/auth/signup", {"email": email, "phone": phone, "password": PASSWORD})


def test_a_number_left_unverified_by_someone_else_can_be_signed_up_and_verified(api):
    squatter = make_user(phone=NEW_PHONE, phone_verified=False)
    sent = len(sms.outbox)
    post(api, f"{AUTH}/auth/code/request", {"phone": NEW_PHONE})
    assert len(sent_sms()) == sent  # an unverified number signs nobody in

    r = _sign_up_with_phone(api, "owner@example.com", NEW_PHONE)
    assert r.status_code == 401
    assert {"id": "verify_phone", "is_pending": True} in r.json()["data"]["flows"]
    session = r.json()["meta"]["session_token"]
    r = post(
        api,
        f"{AUTH}/auth/phone/verify",
        {"code": last_code(sent_sms())},
        **{"X-Session-Token": session},
    )
    assert r.status_code == 401, r.json()  # next: verify the e-mail
    owner = User.objects.get(email="owner@example.com")
    assert (owner.phone, owner.phone_verified) == (NEW_PHONE, True)
    squatter.refresh_from_db()
    assert (squatter.phone, squatter.phone_verified) == (NEW_PHONE, False)


def test_verifying_a_number_verified_elsewhere_meanwhile_is_refused(api, verified_phone_user):
    access = login(api, verified_phone_user.email)["access"]
    _request_phone_change(api, access, NEW_PHONE)
    make_user(phone=NEW_PHONE, phone_verified=True)
    r = post(api, f"{AUTH}/auth/phone/verify", {"code": last_code(sms.outbox)}, **bearer(access))
    assert r.status_code == 400
    assert [e["code"] for e in r.json()["errors"]] == ["phone_taken"]
    verified_phone_user.refresh_from_db()
    assert verified_phone_user.phone == OLD_PHONE


def test_sign_up_racing_another_with_the_same_phone_is_not_a_500(api):
    def race(sender: Any, instance: User, update_fields: Any = None, **kwargs: Any) -> None:
        if instance.email == "second@example.com" and update_fields and "phone" in update_fields:
            pre_save.disconnect(sender=User, dispatch_uid="test-phone-race")
            make_user(email="first@example.com", phone=NEW_PHONE)  # committed just before

    pre_save.connect(race, sender=User, dispatch_uid="test-phone-race")
    try:
        r = _sign_up_with_phone(api, "second@example.com", NEW_PHONE)
    finally:
        pre_save.disconnect(sender=User, dispatch_uid="test-phone-race")
    assert r.status_code == 401, r.content
    assert {"id": "verify_phone", "is_pending": True} in r.json()["data"]["flows"]
    assert User.objects.filter(phone=NEW_PHONE).count() == 2


def test_verified_phone_is_unique():
    make_user(phone=NEW_PHONE, phone_verified=True)
    with pytest.raises(Exception, match="phone"):
        make_user(phone=NEW_PHONE, phone_verified=True)


# --- 8. a pending password change ------------------------------------------------------


def test_pending_password_change_also_blocks_the_session_token(api, admin_access):
    r = post(
        api,
        "/api/v1/admin/doctors",
        {"email": "dr.huda@example.com", "first_name": "Huda", "last_name": "Nabil"},
        **bearer(admin_access),
    )
    temporary = r.json()["temporary_password"]
    r = post(api, f"{AUTH}/auth/login", {"email": "dr.huda@example.com", "password": temporary})
    session = r.json()["meta"]["session_token"]
    r = api.get(f"{AUTH}/account/authenticators", headers={"X-Session-Token": session})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "auth.password_change_required"


def test_the_session_token_check_keeps_sessions_of_a_rotated_secret_key(api, settings):
    user = make_user()
    r = post(api, f"{AUTH}/auth/login", {"email": user.email, "password": PASSWORD})
    session = r.json()["meta"]["session_token"]
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-" + "x" * 40
    # The session's hash matches only the old key: checking it must not cycle the session
    # away under allauth (410, signed out).
    r = api.get(f"{AUTH}/account/email", headers={"X-Session-Token": session})
    assert r.status_code == 200, r.content


def test_staff_with_a_pending_password_change_cannot_enrol_a_second_factor():
    staff = User.objects.create_user(
        email="new.helper@example.com",
        password=twofa.PASSWORD,
        role=Role.HELPER,
        must_change_password=True,
    )
    r = twofa.start_enrolment(Client(), staff.email)
    assert r.status_code == 403
    assert not TOTPDevice.objects.filter(user=staff).exists()


# --- 9. erasure's password check is limited ---------------------------------------------


def test_account_deletion_password_guesses_are_limited(api):
    user = make_user()
    headers = bearer(login(api, user.email)["access"])
    for i in range(5):
        r = post(api, "/api/v1/me/delete", {"password": f"guess-{i}-password"}, **headers)
        assert r.status_code == 403
    r = post(api, "/api/v1/me/delete", {"password": PASSWORD}, **headers)
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "request.rate_limited"
    assert int(r["Retry-After"]) > 0
    user.refresh_from_db()
    assert user.deleted_at is None


# --- 10. audit --------------------------------------------------------------------------


def test_wrong_login_code_is_audited(api):
    user = make_user()
    r = post(api, f"{AUTH}/auth/code/request", {"email": user.email})
    session = r.json()["meta"]["session_token"]
    r = post(
        api, f"{AUTH}/auth/code/confirm", {"code": "WRON-GCOD"}, **{"X-Session-Token": session}
    )
    assert r.status_code == 400
    event = AuditEvent.objects.get(action="auth.login_failed")
    assert (event.target_type, event.target_id) == ("user", str(user.pk))
    assert event.data == {"method": "code", "last_attempt": False}


@pytest.mark.usefixtures("google_certs")
def test_google_sign_up_is_audited_and_gets_a_patient_profile(api, request):
    r = _sign_in(api, _id_token(request.getfixturevalue("google_key")[0]))
    assert r.status_code == 200, r.content
    user = User.objects.get(email="layla@example.com")
    assert PatientProfile.objects.filter(user=user).exists()
    event = AuditEvent.objects.get(action="user.signed_up", target_id=str(user.pk))
    assert event.data == {"role": "patient"}


def test_the_migration_ends_the_sessions_of_accounts_already_inactive():
    import importlib

    from django.apps import apps

    migration = importlib.import_module(
        "accounts.migrations.0002_verified_phone_unique_session_epoch"
    )
    inactive, active = make_user(is_active=False), make_user()
    migration.end_inactive_sessions(apps, None)
    inactive.refresh_from_db()
    active.refresh_from_db()
    assert (inactive.session_epoch, active.session_epoch) == (1, 0)


def test_deactivation_raises_the_epoch_of_the_row_not_of_a_stale_copy(admin_access):
    user = make_user()
    stale = User.objects.get(pk=user.pk)
    User.objects.filter(pk=user.pk).update(session_epoch=5)  # raised meanwhile
    admin = User.objects.get(role=Role.ADMIN)
    services.user_set_active(actor=admin, user=stale, active=False)
    user.refresh_from_db()
    assert (user.is_active, user.session_epoch) == (False, 6)


def test_a_deactivation_ends_a_token_whose_user_is_cached(api, admin_access):
    user = make_user()
    access = login(api, user.email)["access"]
    assert api.get("/api/v1/me", headers=bearer(access)).status_code == 200  # now cached
    r = post(api, f"/api/v1/admin/users/{user.pk}/deactivate", {}, **bearer(admin_access))
    assert r.status_code in (200, 204), r.content
    assert api.get("/api/v1/me", headers=bearer(access)).status_code == 401


def test_a_request_around_the_proxies_is_limited_by_its_own_address(api, settings):
    settings.AUDIT_TRUSTED_PROXY_COUNT = 2
    # One X-Forwarded-For entry where two proxies would write two: it went around them.
    r = api.post(
        f"{AUTH}/auth/login",
        {"email": "nobody@example.org", "password": "wrong-password-1"},
        content_type="application/json",
        headers={"X-Forwarded-For": "203.0.113.9"},
    )
    assert r.status_code == 400  # a failed login, not a 500 of allauth's own rule
    from accounts.adapter import AccountAdapter

    request = r.wsgi_request
    assert AccountAdapter(request).get_client_ip(request) == "127.0.0.1"
    request.META["HTTP_X_FORWARDED_FOR"] = "203.0.113.9, 10.0.0.7"
    assert AccountAdapter(request).get_client_ip(request) == "203.0.113.9"
