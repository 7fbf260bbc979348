"""A superuser's account, and superuser status, are a superuser's only (on the API, in the
services and on the admin site); the admin site's own password change is audited like the
API's; its autocomplete answers; the Google app's keys are view-only and never shown."""

from __future__ import annotations

from typing import Any

import pytest
from allauth.socialaccount.models import SocialApp
from django.contrib.auth.models import Group, Permission
from django.test import Client

from accounts import services
from accounts.errors import SuperuserRequired
from accounts.models import Role, User
from audit.models import AuditEvent
from tests.accounts.admin_site import change_form, helper_with, staff_client, superuser
from tests.factories import PASSWORD, bearer, login, make_user, post

pytestmark = pytest.mark.django_db

SUPERUSER_MESSAGE_AR = (
    "لا يمكن تعديل حساب مستخدم خارق أو جعل حساب ما مستخدمًا خارقًا إلا لمستخدم خارق."
)


def _admin_with_user_change() -> User:
    """An admin who is not a superuser, allowed to change users on the admin site."""
    admin = make_user(role=Role.ADMIN)
    group = Group.objects.create(name="user-changers")
    group.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="accounts", codename__in=["view_user", "change_user"]
        )
    )
    admin.groups.add(group)
    return admin


def _state(user: User) -> tuple[Any, ...]:
    user.refresh_from_db()
    return (user.role, user.is_superuser, user.is_active, user.first_name, user.deleted_at)


# --- the API and the services ---------------------------------------------------------


def test_admin_cannot_demote_then_erase_a_superuser(api: Client) -> None:
    admin = make_user(role=Role.ADMIN)
    top = superuser()
    before = _state(top)
    token = login(api, admin.email)["access"]
    r = api.patch(
        f"/api/v1/admin/users/{top.id}",
        {"role": "patient"},
        content_type="application/json",
        headers={**bearer(token), "Accept-Language": "ar"},
    )
    assert r.status_code == 403, r.json()
    assert r.json()["error"]["code"] == "auth.superuser_required"
    assert r.json()["error"]["message"] == SUPERUSER_MESSAGE_AR
    r = api.patch(
        f"/api/v1/admin/users/{top.id}",
        {"first_name": "Renamed"},
        content_type="application/json",
        headers=bearer(token),
    )
    assert r.status_code == 403, r.json()
    r = post(api, f"/api/v1/admin/users/{top.id}/erase", **bearer(token))
    assert r.status_code == 403, r.json()
    assert _state(top) == before


def test_admin_cannot_deactivate_a_superuser(api: Client) -> None:
    admin = make_user(role=Role.ADMIN)
    top = superuser()
    token = login(api, admin.email)["access"]
    r = post(api, f"/api/v1/admin/users/{top.id}/deactivate", **bearer(token))
    assert r.status_code == 403, r.json()
    assert r.json()["error"]["code"] == "auth.superuser_required"
    top.refresh_from_db()
    assert top.is_active


def test_a_superuser_still_changes_another_superuser(api: Client) -> None:
    actor = superuser()
    top = superuser()
    token = login(api, actor.email)["access"]
    r = api.patch(
        f"/api/v1/admin/users/{top.id}",
        {"role": "patient"},
        content_type="application/json",
        headers=bearer(token),
    )
    assert r.status_code == 200, r.json()
    top.refresh_from_db()
    assert (top.role, top.is_superuser) == (Role.PATIENT, False)


def test_grants_of_a_superuser_and_superuser_status_are_a_superusers_only() -> None:
    admin = make_user(role=Role.ADMIN)
    top = superuser()
    other = make_user(role=Role.ADMIN)
    support = Group.objects.create(name="support")
    with pytest.raises(SuperuserRequired):
        services.user_grants_set(actor=admin, user=top, changes={"is_superuser": False})
    with pytest.raises(SuperuserRequired):
        services.user_grants_set(actor=admin, user=top, changes={"groups": [support]})
    with pytest.raises(SuperuserRequired):
        services.user_grants_set(actor=admin, user=other, changes={"is_superuser": True})
    top.refresh_from_db()
    other.refresh_from_db()
    assert top.is_superuser and not top.groups.exists()
    assert not other.is_superuser
    # What is not superuser status, of an account that is not a superuser's, stays an admin's.
    services.user_grants_set(actor=admin, user=other, changes={"groups": [support]})
    services.user_grants_set(actor=top, user=other, changes={"is_superuser": True})
    other.refresh_from_db()
    assert other.is_superuser and list(other.groups.all()) == [support]


# --- the admin site -------------------------------------------------------------------


def test_admin_cannot_make_an_account_superuser_on_the_admin_site() -> None:
    client = staff_client(_admin_with_user_change())
    puppet = make_user(role=Role.ADMIN)
    url = f"/admin/accounts/user/{puppet.pk}/change/"
    page = client.get(url)
    assert "is_superuser" not in page.context["adminform"].form.fields
    data = change_form(client, url, is_superuser="on", first_name="Puppet")
    assert client.post(url, data).status_code == 302
    puppet.refresh_from_db()
    assert (puppet.is_superuser, puppet.first_name) == (False, "Puppet")
    assert not AuditEvent.objects.filter(action="user.permissions_changed").exists()


def test_admin_cannot_change_a_superuser_on_the_admin_site() -> None:
    client = staff_client(_admin_with_user_change())
    top = superuser()
    before = _state(top)
    url = f"/admin/accounts/user/{top.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200  # seen, not changed
    assert not page.context["has_change_permission"]
    data = page.context["adminform"].form.initial  # what a forged post could send
    forged = {"first_name": "x", "role": Role.PATIENT, "is_active": "", "is_superuser": ""}
    assert client.post(url, {**data, **forged}).status_code == 403
    assert _state(top) == before


def test_a_superuser_still_makes_an_admin_superuser_on_the_admin_site() -> None:
    client = staff_client(superuser())
    other = make_user(role=Role.ADMIN)
    url = f"/admin/accounts/user/{other.pk}/change/"
    assert client.post(url, change_form(client, url, is_superuser="on")).status_code == 302
    other.refresh_from_db()
    assert other.is_superuser


def test_password_change_on_the_admin_site_is_audited_and_revokes(
    api: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    revoked: list[Any] = []
    monkeypatch.setattr(services, "ACCESS_REVOKED_HOOKS", [revoked.append])
    admin = superuser()
    token = login(api, admin.email)["access"]
    client = staff_client(admin)
    new = "Another-Str0ng-Passphrase-77"
    wrong = {"old_password": "not-it", "new_password1": new, "new_password2": new}
    assert client.post("/admin/password_change/", wrong).status_code == 200
    assert not AuditEvent.objects.filter(action="auth.password_changed").exists()
    assert revoked == []
    right = {"old_password": PASSWORD, "new_password1": new, "new_password2": new}
    assert client.post("/admin/password_change/", right).status_code == 302
    admin.refresh_from_db()
    assert admin.check_password(new)
    event = AuditEvent.objects.get(action="auth.password_changed")
    assert (event.actor_id, event.target_type, event.target_id) == (admin.pk, "user", str(admin.pk))
    assert revoked == [admin.pk]
    assert api.get("/api/v1/me", headers=bearer(token)).status_code == 401


def test_no_password_is_set_on_the_admin_sites_user_page() -> None:
    client = staff_client(superuser())
    user = make_user()
    url = f"/admin/accounts/user/{user.pk}/password/"
    assert client.get(url).status_code == 403
    data = {"password1": "x-Str0ng-pass-1", "password2": "x-Str0ng-pass-1"}
    assert client.post(url, data).status_code == 403
    user.refresh_from_db()
    assert user.check_password(PASSWORD)


@pytest.mark.parametrize(("who", "status"), [("superuser", 200), ("helper", 403)])
def test_autocomplete_of_an_admins_only_model_answers(who: str, status: int) -> None:
    user = superuser() if who == "superuser" else helper_with("accounts.view_user")
    client = staff_client(user)
    client.raise_request_exception = False
    r = client.get(
        "/admin/autocomplete/",
        {"app_label": "accounts", "model_name": "user", "field_name": "groups", "term": "x"},
    )
    assert r.status_code == status


def test_the_google_app_is_view_only_and_its_secret_never_shown() -> None:
    app = SocialApp.objects.create(
        provider="google", name="Google", client_id="client-1", secret="s3cr3t-value", key="k3y"
    )
    client = staff_client(superuser())
    base = "/admin/socialaccount/socialapp/"
    url = f"{base}{app.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    assert not page.context["has_change_permission"]
    assert b"s3cr3t-value" not in page.content and b"client-1" in page.content
    assert b"s3cr3t-value" not in client.get(base).content
    forged = {"provider": "google", "name": "Evil", "client_id": "evil", "secret": "evil"}
    assert client.post(url, forged).status_code == 403
    assert client.get(f"{base}add/").status_code == 403
    assert client.post(f"{base}{app.pk}/delete/", {"post": "yes"}).status_code == 403
    app.refresh_from_db()
    assert (app.name, app.client_id, app.secret) == ("Google", "client-1", "s3cr3t-value")
    helper = staff_client(helper_with("socialaccount.view_socialapp"))
    assert helper.get(url).status_code == 403


def test_a_superusers_second_factor_is_removed_by_a_superuser_only():
    from django_otp.plugins.otp_totp.models import TOTPDevice

    top = superuser()
    device = TOTPDevice.objects.create(user=top, name="phone", confirmed=True)
    admin = _admin_with_user_change()
    admin.groups.first().permissions.add(  # type: ignore[union-attr]
        *Permission.objects.filter(
            content_type__app_label="otp_totp",
            codename__in=["view_totpdevice", "delete_totpdevice"],
        )
    )
    with pytest.raises(SuperuserRequired):
        services.totp_devices_delete(actor=admin, devices=[device])
    client = staff_client(admin)  # enrols a device of the admin's own
    devices = "/admin/otp_totp/totpdevice/"
    listed = client.get(devices)
    assert listed.status_code == 200 and f"{devices}{device.pk}/" not in listed.content.decode()
    r = client.post(f"{devices}{device.pk}/delete/", {"post": "yes"})
    assert r.status_code in (302, 404)  # not found for this admin: nothing removed
    assert TOTPDevice.objects.filter(pk=device.pk).exists()
    assert not AuditEvent.objects.filter(action="auth.totp_removed").exists()
    # A superuser still removes it (a lost phone).
    assert services.totp_devices_delete(actor=superuser(), devices=[device]) == 1
    assert not TOTPDevice.objects.filter(pk=device.pk).exists()
