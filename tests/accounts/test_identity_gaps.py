"""Three identity gaps closed: removals of staff second factors are audited; a sign-up by
phone refused by the code-sending limit creates nothing; accounts without a password (Google
sign-in only) confirm sensitive actions by a recent sign-in instead."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from allauth.headless.tokens.strategies.jwt import internal
from django.core import mail
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services
from accounts.errors import AdminOnly
from accounts.models import Role, User
from audit.models import AuditEvent
from core import sms
from tests.accounts.admin_site import helper_with, staff_client, superuser
from tests.accounts.sms_queue import sent_sms
from tests.accounts.test_google import _id_token, _sign_in, google_certs, google_key  # noqa: F401
from tests.accounts.test_phone import capture_sms  # noqa: F401  (autouse: SMS are captured)
from tests.factories import AUTH, PASSWORD, bearer, last_code, login, make_user, post

pytestmark = pytest.mark.django_db

DEVICES = "/admin/otp_totp/totpdevice/"
PHONE = "+201001234567"
OTHER_PHONES = ["+201001234501", "+201001234502", "+201001234503", "+201001234504"]


# --- 1. removing a TOTP device is audited ------------------------------------------------


def _removals() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="auth.totp_removed").order_by("id"))


def test_deleting_a_totp_device_on_the_admin_site_is_audited():
    admin = superuser()
    client = staff_client(admin)
    owner = make_user(role=Role.HELPER)
    device = TOTPDevice.objects.create(user=owner, name="phone", confirmed=True)
    key = device.key

    r = client.post(f"{DEVICES}{device.pk}/delete/", {"post": "yes"}, HTTP_USER_AGENT="Browser/1")
    assert r.status_code == 302
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()

    [event] = _removals()
    assert (event.actor_id, event.actor_role) == (admin.pk, Role.ADMIN)
    assert (event.target_type, event.target_id) == ("user", str(owner.pk))
    assert event.data == {"device_id": device.pk, "confirmed": True}
    assert event.ip == "127.0.0.1"
    assert event.user_agent == "Browser/1"
    assert key not in str(event.data)  # no secret in the trail


def test_deleting_totp_devices_in_bulk_audits_each_one():
    admin = superuser()
    client = staff_client(admin)
    owners = [make_user(role=Role.HELPER), make_user(role=Role.ADMIN)]
    devices = [
        TOTPDevice.objects.create(user=owners[0], name="phone", confirmed=True),
        TOTPDevice.objects.create(user=owners[1], name="tablet", confirmed=False),
    ]
    r = client.post(
        DEVICES,
        {
            "action": "delete_selected",
            "_selected_action": [str(d.pk) for d in devices],
            "post": "yes",
        },
    )
    assert r.status_code == 302
    assert not TOTPDevice.objects.filter(pk__in=[d.pk for d in devices]).exists()
    events = _removals()
    assert [(e.actor_id, e.target_id, e.data) for e in events] == [
        (admin.pk, str(owners[0].pk), {"device_id": devices[0].pk, "confirmed": True}),
        (admin.pk, str(owners[1].pk), {"device_id": devices[1].pk, "confirmed": False}),
    ]


def test_only_admins_remove_totp_devices_through_the_service():
    owner = make_user(role=Role.ADMIN)
    device = TOTPDevice.objects.create(user=owner, name="phone", confirmed=True)
    helper = helper_with("otp_totp.delete_totpdevice", "otp_totp.view_totpdevice")
    with pytest.raises(AdminOnly):
        services.totp_devices_delete(actor=helper, devices=[device])
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert _removals() == []
    # Nor on the admin site, whatever the helper's groups hold.
    r = staff_client(helper).post(f"{DEVICES}{device.pk}/delete/", {"post": "yes"})
    assert r.status_code == 403
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert _removals() == []


# --- 2. a sign-up refused by the SMS-code limit creates no account -----------------------


def _signup(api: Client, email: str, phone: str, **headers: str):
    body = {"email": email, "phone": phone, "password": PASSWORD}
    return post(api, f"{AUTH}/auth/signup", body, **headers)


def _assert_rate_limited(r) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == 429, r.content
    assert r.json()["error"]["code"] == "request.rate_limited"
    assert int(r["Retry-After"]) > 0


def test_signup_refused_by_the_per_number_code_limit_creates_no_account(api):
    assert _signup(api, "first@example.com", PHONE).status_code == 401  # code sent
    sent = len(sent_sms())

    r = _signup(api, "second@example.com", PHONE)  # a second code to the number, too soon
    _assert_rate_limited(r)
    assert r.json()["error"]["message"] == "Too many requests. Please wait and try again."
    assert not User.objects.filter(email="second@example.com").exists()
    assert not EmailAddress.objects.filter(email="second@example.com").exists()
    assert (
        not AuditEvent.objects.filter(action="user.signed_up")
        .exclude(target_id=str(User.objects.get(email="first@example.com").pk))
        .exists()
    )
    assert len(sent_sms()) == sent


def test_signup_refused_by_the_per_client_code_limit_creates_no_account_in_arabic(api):
    for i, phone in enumerate(OTHER_PHONES[:3]):
        assert _signup(api, f"user{i}@example.com", phone).status_code == 401
    r = _signup(api, "late@example.com", OTHER_PHONES[3], **{"Accept-Language": "ar"})
    _assert_rate_limited(r)
    assert r.json()["error"]["message"] == "طلبات كثيرة جدًا. يرجى الانتظار ثم المحاولة مرة أخرى."
    assert not User.objects.filter(email="late@example.com").exists()
    assert User.objects.count() == 3


@pytest.mark.parametrize("number_has_account", [False, True])
def test_a_refused_signup_answers_alike_whether_the_number_has_an_account(api, number_has_account):
    """Anti-enumeration: a number verified on an account gets, in both steps, what a new
    number gets (allauth makes no account for it and hides that one exists)."""
    if number_has_account:
        make_user(email="holder@example.com", phone=PHONE, phone_verified=True)
    users = User.objects.count()
    first = _signup(api, "first@example.com", PHONE)
    assert first.status_code == 401
    assert {"id": "verify_phone", "is_pending": True} in first.json()["data"]["flows"]
    r = _signup(api, "second@example.com", PHONE)
    _assert_rate_limited(r)
    assert r.json() == {
        "error": {
            "code": "request.rate_limited",
            "message": "Too many requests. Please wait and try again.",
            "fields": {},
        }
    }
    assert not User.objects.filter(email="second@example.com").exists()
    assert User.objects.count() == users + (0 if number_has_account else 1)


# --- 3. accounts without a password confirm by a recent sign-in ---------------------------


@pytest.fixture
def google_access(api, google_certs, google_key):  # noqa: F811
    """A fresh sign-in of a Google-only account: its access token."""

    def sign_in() -> str:
        r = _sign_in(api, _id_token(google_key[0]))
        assert r.status_code == 200, r.content
        return str(r.json()["meta"]["access_token"])

    return sign_in


def _google_user() -> User:
    user = User.objects.get(email="layla@example.com")
    assert not user.has_usable_password()
    return user


def _age_sign_in(access: str, seconds: float) -> None:
    """Make the token's session have signed in ``seconds`` earlier than it did."""
    session = internal.get_token_session(internal.decode_token(access, "access") or {})
    assert session is not None
    records = session["account_authentication_methods"]
    assert records  # allauth recorded the Google sign-in
    session["account_authentication_methods"] = [{**r, "at": r["at"] - seconds} for r in records]
    session.save()


def _delete(api: Client, access: str, body: dict, **headers: str):
    return post(api, "/api/v1/me/delete", body, **bearer(access), **headers)


CONFIRM = {"confirm": "delete my account"}


def test_google_only_account_signed_in_recently_can_delete_itself(api, google_access):
    access = google_access()
    user = _google_user()
    assert _delete(api, access, CONFIRM).status_code == 204
    user.refresh_from_db()
    assert user.deleted_at is not None
    assert AuditEvent.objects.filter(action="user.deleted", target_id=str(user.pk)).exists()


def test_google_only_account_still_types_the_confirmation(api, google_access):
    access = google_access()
    r = _delete(api, access, {"confirm": "yes"})
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "auth.confirmation_failed"
    assert _google_user().deleted_at is None


def test_google_only_account_with_a_stale_sign_in_is_told_to_sign_in_again(
    api, google_access, settings
):
    access = google_access()
    _age_sign_in(access, 6 * 60)
    r = _delete(api, access, CONFIRM)
    assert r.status_code == 403
    assert r.json()["error"] == {
        "code": "auth.recent_sign_in_required",
        "message": "For your security, please sign in again, then try again within a few minutes.",
        "fields": {},
    }
    r = _delete(api, access, CONFIRM, **{"Accept-Language": "ar"})
    assert r.json()["error"]["code"] == "auth.recent_sign_in_required"
    assert r.json()["error"]["message"].startswith("حفاظًا على أمان حسابك")
    assert _google_user().deleted_at is None

    # The window is a setting.
    settings.RECENT_SIGN_IN_MINUTES = 10
    assert _delete(api, access, {"confirm": "no"}).json()["error"]["code"] == (
        "auth.confirmation_failed"
    )
    settings.RECENT_SIGN_IN_MINUTES = 5

    # A new sign-in is what makes it recent again.
    fresh = google_access()
    assert _delete(api, fresh, CONFIRM).status_code == 204


def test_refreshing_tokens_does_not_make_a_stale_sign_in_recent(api, google_certs, google_key):  # noqa: F811
    r = _sign_in(api, _id_token(google_key[0]))
    meta = r.json()["meta"]
    _age_sign_in(meta["access_token"], 6 * 60)
    r = post(api, f"{AUTH}/tokens/refresh", {"refresh_token": meta["refresh_token"]})
    assert r.status_code == 200, r.content
    access = r.json()["data"]["access_token"]
    r = _delete(api, access, CONFIRM)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "auth.recent_sign_in_required"


def test_password_account_still_needs_its_password_even_right_after_signing_in(api):
    user = make_user()
    access = login(api, user.email)["access"]
    for body in ({}, CONFIRM, {"password": "", **CONFIRM}):
        r = _delete(api, access, body)
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "auth.confirmation_failed"
    user.refresh_from_db()
    assert user.deleted_at is None
    assert _delete(api, access, {"password": PASSWORD}).status_code == 204


def test_google_only_account_changes_addresses_only_after_a_recent_sign_in(api, google_access):
    """allauth has no way to reauthenticate such an account and let it through unasked: a
    stolen token could add an address (then reset a password through it) or take the phone."""
    access = google_access()
    _age_sign_in(access, 6 * 60)
    mail.outbox.clear()
    r = post(api, f"{AUTH}/account/email", {"email": "thief@example.com"}, **bearer(access))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "auth.recent_sign_in_required"
    assert not EmailAddress.objects.filter(email="thief@example.com").exists()
    assert mail.outbox == []
    r = post(api, f"{AUTH}/account/phone", {"phone": PHONE}, **bearer(access))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "auth.recent_sign_in_required"
    assert sms.outbox == []

    fresh = google_access()
    r = post(api, f"{AUTH}/account/email", {"email": "second@example.com"}, **bearer(fresh))
    assert r.status_code == 200, r.content
    assert mail.outbox[-1].to == ["second@example.com"]  # its verification code


def test_google_only_account_sets_a_password_only_after_a_recent_sign_in(api, google_access):
    """allauth asks an account with no password for no current one before setting it: with a
    stolen token alone, one could set a password, then sign in with it and pass every check
    that asks for the password."""
    access = google_access()
    _age_sign_in(access, 6 * 60)
    new = {"new_password": "a-new-Passw0rd-for-layla"}
    r = post(api, f"{AUTH}/account/password/change", new, **bearer(access))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "auth.recent_sign_in_required"
    assert not _google_user().has_usable_password()

    fresh = google_access()
    r = post(api, f"{AUTH}/account/password/change", new, **bearer(fresh))
    assert r.status_code in (200, 401), r.content  # set; allauth may sign the session out
    assert User.objects.get(email="layla@example.com").check_password(new["new_password"])


def test_a_reset_by_code_sets_a_first_password_even_with_an_older_sign_ins_token(
    api, google_access
):
    """The recent-sign-in rule is for the change-password endpoint only: a reset proves the
    address with its code, whether or not the app sends the token of an older sign-in."""
    access = google_access()
    _age_sign_in(access, 6 * 60)
    mail.outbox.clear()
    r = post(api, f"{AUTH}/auth/password/request", {"email": "layla@example.com"}, **bearer(access))
    assert r.status_code in (200, 401), r.content
    code = last_code(mail.outbox)
    new = "a-new-Passw0rd-for-layla"
    r = post(api, f"{AUTH}/auth/password/reset", {"key": code, "password": new}, **bearer(access))
    assert r.status_code in (200, 401), r.content
    assert User.objects.get(email="layla@example.com").check_password(new)
