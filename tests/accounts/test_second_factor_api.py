"""Staff tokens on the API need the second factor the admin site asks for (ID-10): until
the token's session passes it with a code of the authenticator app enrolled on the admin
site, every endpoint but the first steps (``/me``, ``/whoami``, this one) is refused."""

from __future__ import annotations

from datetime import timedelta

import pytest
from allauth.account.models import EmailAddress
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from tests.factories import (
    AUTH,
    PASSWORD,
    bearer,
    login,
    make_user,
    post,
    totp_code,
)

pytestmark = pytest.mark.django_db
SECOND = "/api/v1/auth/second-factor"


def _device(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


@pytest.mark.parametrize("role", ["admin", "helper"])
def test_a_staff_token_reaches_nothing_but_its_first_steps_before_the_second_factor(api, role):
    staff = make_user(role=role, is_staff=True, language="ar")
    device = _device(staff)
    headers = bearer(login(api, staff.email, second_factor=False)["access"])
    for path in ("/api/v1/admin/users", "/api/v1/admin/audit", "/api/v1/admin/verifications"):
        r = api.get(path, headers=headers)
        assert r.status_code == 403, (path, r.content)
        error = r.json()["error"]
        assert error["code"] == "auth.second_factor_required"
        assert any("\u0600" <= c <= "\u06ff" for c in error["message"])  # the saved language
    assert api.get("/api/v1/whoami", headers=headers).json()["role"] == role
    assert api.get("/api/v1/me", headers=headers).status_code == 200

    r = post(api, SECOND, {"code": totp_code(device)}, **headers)
    assert r.status_code == 204
    for path in ("/api/v1/admin/users", "/api/v1/admin/audit", "/api/v1/admin/verifications"):
        r = api.get(path, headers=headers)  # what the role may do, it now does
        assert r.status_code == 200 or r.json()["error"]["code"] == "auth.forbidden", path
    event = AuditEvent.objects.get(action="auth.second_factor")
    assert (event.actor_id, event.data) == (staff.pk, {"device_id": device.pk})


def test_wrong_codes_are_refused_throttled_and_audited(api):
    admin = make_user(role="admin", is_staff=True)
    device = _device(admin)
    headers = bearer(login(api, admin.email, second_factor=False)["access"])
    wrong = f"{(int(totp_code(device)) + 1) % 1_000_000:06d}"

    r = post(api, SECOND, {"code": wrong}, **headers)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "auth.second_factor_invalid")
    r = post(api, SECOND, {"code": totp_code(device)}, **headers)  # right, but too soon
    assert (r.status_code, r.json()["error"]["code"]) == (429, "auth.second_factor_throttled")
    assert int(r["Retry-After"]) >= 1
    assert AuditEvent.objects.filter(action="auth.second_factor_failed").count() == 1
    assert api.get("/api/v1/admin/users", headers=headers).status_code == 403

    TOTPDevice.objects.filter(pk=device.pk).update(
        throttling_failure_timestamp=timezone.now() - timedelta(minutes=1)
    )
    assert post(api, SECOND, {"code": totp_code(device)}, **headers).status_code == 204
    assert api.get("/api/v1/admin/users", headers=headers).status_code == 200
    for bad in ("", "12345", "abcdef", "1234567890"):
        r = post(api, SECOND, {"code": bad}, **headers)
        assert r.status_code == 422 and r.json()["error"]["code"] == "request.invalid"


def test_the_mark_belongs_to_the_session_refreshed_tokens_keep_it_a_new_sign_in_needs_it(api):
    admin = make_user(role="admin", is_staff=True)
    tokens = login(api, admin.email)  # passes the second factor
    assert api.get("/api/v1/admin/users", headers=bearer(tokens["access"])).status_code == 200
    r = post(api, f"{AUTH}/tokens/refresh", {"refresh_token": tokens["refresh"]})
    refreshed = bearer(r.json()["data"]["access_token"])
    assert api.get("/api/v1/admin/users", headers=refreshed).status_code == 200

    other = bearer(login(api, admin.email, second_factor=False)["access"])
    r = api.get("/api/v1/admin/users", headers=other)
    assert r.json()["error"]["code"] == "auth.second_factor_required"
    # The code just used is not taken again (django-otp refuses a replay within its step):
    # the code of the step last used, not the clock's (a slow run may be in the next step).
    from django_otp.oath import hotp

    device = TOTPDevice.objects.get(user=admin)
    used = f"{hotp(device.bin_key, device.last_t, device.digits):06d}"
    r = post(api, SECOND, {"code": used}, **other)
    assert r.status_code == 422


def test_who_has_no_device_or_is_not_staff(api):
    admin = make_user(role="admin", is_staff=True)
    headers = bearer(login(api, admin.email, second_factor=False)["access"])
    r = post(api, SECOND, {"code": "123456"}, **headers)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "auth.second_factor_not_enrolled")
    unconfirmed = TOTPDevice.objects.create(user=admin, name="phone", confirmed=False)
    r = post(api, SECOND, {"code": totp_code(unconfirmed)}, **headers)
    assert r.json()["error"]["code"] == "auth.second_factor_not_enrolled"

    patient = make_user()
    patient_headers = bearer(login(api, patient.email)["access"])
    r = post(api, SECOND, {"code": "123456"}, **patient_headers)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "auth.forbidden")
    assert api.get("/api/v1/me", headers=patient_headers).status_code == 200  # unaffected
    assert post(api, SECOND, {"code": "123456"}).status_code == 401


def test_a_helper_already_passed_is_still_refused_what_its_role_may_not_do(api):
    helper = make_user(role="helper", is_staff=True)
    headers = bearer(login(api, helper.email)["access"])  # passes the second factor
    r = api.post(
        f"/api/v1/admin/users/{make_user().pk}/erase",
        headers=headers,
        content_type="application/json",
    )
    assert r.status_code == 403 and r.json()["error"]["code"] != "auth.second_factor_required"


def test_the_password_change_demand_speaks_the_saved_language(api):
    """Checked before the second factor, and answered in the user's saved language when the
    request asks for none we speak, on our endpoints and on allauth's."""
    doctor = make_user(role="doctor", language="ar", must_change_password=True)
    headers = bearer(login(api, doctor.email)["access"])
    for r in (
        api.get("/api/v1/doctor/profile", headers=headers),
        post(api, f"{AUTH}/account/email", {"email": "x@example.com"}, **headers),
    ):
        assert r.status_code == 403
        message = r.json()["error"]["message"]
        assert any("\u0600" <= c <= "\u06ff" for c in message), message


def test_allauths_endpoints_change_nothing_of_a_staff_account_before_the_second_factor(api):
    """A stolen staff password alone changes neither the password nor the addresses."""
    admin = make_user(role="admin", is_staff=True, language="ar")
    device = _device(admin)
    headers = bearer(login(api, admin.email, second_factor=False)["access"])
    assert api.get(f"{AUTH}/auth/session", headers=headers).status_code == 200
    for path, body in (
        (f"{AUTH}/account/email", {"email": "attacker@example.com"}),
        (f"{AUTH}/account/password/change", {"current_password": PASSWORD, "new_password": "Attacker-Chosen-Pass-77"}),
        (f"{AUTH}/auth/reauthenticate", {"password": PASSWORD}),
    ):  # fmt: skip
        r = post(api, path, body, **headers)
        assert r.status_code == 403, (path, r.content)
        assert r.json()["error"]["code"] == "auth.second_factor_required"
        assert any("\u0600" <= c <= "\u06ff" for c in r.json()["error"]["message"])
    admin.refresh_from_db()
    assert admin.check_password(PASSWORD)

    assert post(api, SECOND, {"code": totp_code(device)}, **headers).status_code == 204
    r = post(api, f"{AUTH}/auth/reauthenticate", {"password": PASSWORD}, **headers)
    assert r.status_code == 200


def test_an_admin_made_staff_account_changes_its_password_first_without_a_device(api):
    helper = make_user(role="helper", is_staff=True, must_change_password=True)
    headers = bearer(login(api, helper.email)["access"])
    r = post(
        api,
        f"{AUTH}/account/password/change",
        {"current_password": PASSWORD, "new_password": "Brand-New-Pass-2026"},
        **headers,
    )
    assert r.status_code in (200, 401), r.content  # changed (allauth ends the session: 401)
    helper.refresh_from_db()
    assert helper.check_password("Brand-New-Pass-2026")


def test_removing_the_device_ends_what_it_let_in(api):
    from accounts.services import totp_devices_delete

    admin, other_admin = (make_user(role="admin", is_staff=True) for _ in range(2))
    tokens = login(api, admin.email)
    headers = bearer(tokens["access"])
    assert api.get("/api/v1/admin/users", headers=headers).status_code == 200

    totp_devices_delete(actor=other_admin, devices=TOTPDevice.objects.filter(user=admin))

    r = api.get("/api/v1/admin/users", headers=headers)
    assert r.json()["error"]["code"] == "auth.second_factor_required"
    r = post(api, f"{AUTH}/tokens/refresh", {"refresh_token": tokens["refresh"]})
    refreshed = bearer(r.json()["data"]["access_token"])
    assert api.get("/api/v1/admin/users", headers=refreshed).status_code == 403


def test_a_token_refresh_while_the_code_is_checked_is_kept(api, monkeypatch):
    """The mark is written on the session as it is then, not on the request's old copy."""
    from django.test import Client

    from accounts import otp

    admin = make_user(role="admin", is_staff=True)
    device = _device(admin)
    tokens = login(api, admin.email, second_factor=False)
    refreshed: dict = {}
    audit = otp.record_from_request

    def refresh_meanwhile(*args, **kwargs):
        r = post(Client(), f"{AUTH}/tokens/refresh", {"refresh_token": tokens["refresh"]})
        refreshed.update(r.json()["data"])
        return audit(*args, **kwargs)

    monkeypatch.setattr(otp, "record_from_request", refresh_meanwhile)
    r = post(api, SECOND, {"code": totp_code(device)}, **bearer(tokens["access"]))
    assert r.status_code == 204
    monkeypatch.undo()

    new = bearer(refreshed["access_token"])
    assert api.get("/api/v1/admin/users", headers=new).status_code == 200
    r = post(api, f"{AUTH}/tokens/refresh", {"refresh_token": refreshed["refresh_token"]})
    assert r.status_code == 200  # not taken for a replayed token


def test_a_staff_session_token_is_checked_whatever_access_token_comes_beside_it(api):
    """allauth acts as the session the X-Session-Token names: so is it checked."""
    from django.test import Client

    admin = make_user(role="admin", is_staff=True)
    _device(admin)
    r = post(Client(), f"{AUTH}/auth/login", {"email": admin.email, "password": PASSWORD})
    staff_session = r.json()["meta"]["session_token"]
    patient_access = login(api, make_user().email)["access"]
    both = {**bearer(patient_access), "X-Session-Token": staff_session}
    r = post(api, f"{AUTH}/account/email", {"email": "attacker@example.com"}, **both)
    assert r.status_code == 403 and r.json()["error"]["code"] == "auth.second_factor_required"
    assert not EmailAddress.objects.filter(email="attacker@example.com").exists()
