"""User administration on the Django admin site: what grants access is for admins only and
never on one's own account; changes the API also makes go through the same services."""

from __future__ import annotations

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services
from accounts.models import Role, User
from audit.models import AuditEvent
from tests.accounts.admin_site import change_form, helper_with, staff_client, superuser
from tests.factories import AUTH, PASSWORD, bearer, login, make_user, post

pytestmark = pytest.mark.django_db

USERS = "/admin/accounts/user/"
ACCESS = ("role", "is_active", "is_superuser", "groups")


def change_url(user: User) -> str:
    return f"{USERS}{user.pk}/change/"


def editable_fields(client: Client, user: User) -> set[str]:
    page = client.get(change_url(user))
    assert page.status_code == 200
    return set(page.context["adminform"].form.fields)


def user_helper() -> User:
    return helper_with("accounts.view_user", "accounts.change_user", "accounts.add_user")


def test_helper_cannot_raise_its_own_access():
    helper = user_helper()
    client = staff_client(helper)
    admins = Group.objects.create(name="everything")
    data = change_form(
        client,
        change_url(helper),
        role=Role.ADMIN,
        is_superuser="on",
        groups=[str(admins.pk)],
        first_name="Hana",
    )
    assert client.post(change_url(helper), data).status_code == 302
    helper.refresh_from_db()
    assert (helper.role, helper.is_superuser, helper.first_name) == (Role.HELPER, False, "Hana")
    assert not helper.groups.filter(pk=admins.pk).exists()
    assert not set(ACCESS) & editable_fields(client, helper)


def test_helper_cannot_grant_access_to_anyone():
    client = staff_client(user_helper())
    patient = make_user()
    data = change_form(client, change_url(patient), role=Role.ADMIN, is_superuser="on")
    assert client.post(change_url(patient), data).status_code == 302
    patient.refresh_from_db()
    assert (patient.role, patient.is_superuser, patient.is_staff) == (Role.PATIENT, False, False)
    assert not set(ACCESS) & editable_fields(client, patient)


def test_helper_adds_only_patients_and_doctors():
    client = staff_client(user_helper())
    r = client.post(
        f"{USERS}add/",
        {
            "email": "new.admin@example.com",
            "role": Role.ADMIN,
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
    )
    assert r.status_code == 200  # the form again
    assert "role" in r.context["adminform"].form.errors
    assert not User.objects.filter(email="new.admin@example.com").exists()


def test_helper_can_neither_change_nor_delete_an_admin():
    helper = helper_with("accounts.view_user", "accounts.change_user", "accounts.delete_user")
    client = staff_client(helper)
    admin = make_user(role=Role.ADMIN, first_name="Amal")
    data = change_form(client, change_url(make_user()))  # a page it may change, for the shape
    data["first_name"] = "Mallory"
    assert client.post(change_url(admin), data).status_code == 403
    assert client.post(f"{USERS}{admin.pk}/delete/", {"post": "yes"}).status_code == 403
    admin.refresh_from_db()
    assert (admin.first_name, admin.is_active) == ("Amal", True)


def test_superuser_cannot_change_its_own_access():
    admin = superuser()
    client = staff_client(admin)
    assert not set(ACCESS) & editable_fields(client, admin)
    data = change_form(client, change_url(admin), role=Role.PATIENT, is_active=False)
    assert client.post(change_url(admin), data).status_code == 302
    admin.refresh_from_db()
    assert (admin.role, admin.is_active, admin.is_superuser) == (Role.ADMIN, True, True)


def test_superuser_changes_a_role_through_the_audited_service():
    admin = superuser()
    client = staff_client(admin)
    user = make_user()
    assert set(ACCESS) <= editable_fields(client, user)
    data = change_form(client, change_url(user), role=Role.HELPER, first_name="Hala")
    assert client.post(change_url(user), data).status_code == 302
    user.refresh_from_db()
    assert (user.role, user.is_staff, user.first_name) == (Role.HELPER, True, "Hala")
    event = AuditEvent.objects.get(action="user.role_changed", target_id=str(user.pk))
    assert (event.actor_id, event.data) == (admin.pk, {"before": "patient", "after": "helper"})
    updated = AuditEvent.objects.get(action="user.updated", target_id=str(user.pk))
    assert updated.data == {"fields": ["first_name"]}


def test_a_role_change_closes_the_users_sockets(monkeypatch):
    revoked: list = []
    monkeypatch.setattr(services, "ACCESS_REVOKED_HOOKS", [revoked.append])
    client = staff_client(superuser())
    user = make_user()
    data = change_form(client, change_url(user), first_name="Only a name")
    assert client.post(change_url(user), data).status_code == 302
    assert revoked == []  # a name is no reason to reconnect
    data = change_form(client, change_url(user), role=Role.HELPER)
    assert client.post(change_url(user), data).status_code == 302
    assert revoked == [user.pk]  # opened as a patient: they reconnect as a helper


def test_superuser_deactivates_through_the_service_closing_sockets(monkeypatch):
    revoked: list = []
    monkeypatch.setattr(services, "ACCESS_REVOKED_HOOKS", [revoked.append])
    admin = superuser()
    client = staff_client(admin)
    user = make_user()
    tokens = login(Client(), user.email)
    data = change_form(client, change_url(user), is_active=False)
    assert client.post(change_url(user), data).status_code == 302
    user.refresh_from_db()
    assert not user.is_active
    assert revoked == [user.pk]
    event = AuditEvent.objects.get(action="user.deactivated", target_id=str(user.pk))
    assert event.actor_id == admin.pk
    assert Client().get("/api/v1/me", headers=bearer(tokens["access"])).status_code == 401

    data = change_form(client, change_url(user), is_active="on")
    assert client.post(change_url(user), data).status_code == 302
    assert AuditEvent.objects.filter(action="user.reactivated", target_id=str(user.pk)).exists()


def test_superuser_grants_groups_and_it_is_audited():
    admin = superuser()
    client = staff_client(admin)
    helper = make_user(role=Role.HELPER)
    support = Group.objects.create(name="support")
    data = change_form(client, change_url(helper), groups=[str(support.pk)])
    assert client.post(change_url(helper), data).status_code == 302
    assert list(helper.groups.all()) == [support]
    event = AuditEvent.objects.get(action="user.permissions_changed", target_id=str(helper.pk))
    assert (event.actor_id, event.data) == (
        admin.pk,
        {"fields": ["groups"], "is_superuser": False, "groups": ["support"]},
    )


def test_only_an_admin_stays_a_superuser():
    admin = superuser()
    admin.role = Role.HELPER
    admin.save()
    admin.refresh_from_db()
    assert (admin.is_staff, admin.is_superuser) == (True, False)


def test_email_and_phone_change_only_through_the_verified_flows():
    client = staff_client(superuser())
    user = make_user(email="old@example.com", phone="+201000000001", phone_verified=True)
    data = change_form(client, change_url(user), email="new@example.com", phone="+201000000002")
    assert client.post(change_url(user), data).status_code == 302
    user.refresh_from_db()
    assert (user.email, user.phone) == ("old@example.com", "+201000000001")
    assert list(EmailAddress.objects.filter(user=user).values_list("email", flat=True)) == [
        "old@example.com"
    ]
    api = Client()
    login(api, "old@example.com")
    r = post(api, f"{AUTH}/auth/login", {"email": "new@example.com", "password": PASSWORD})
    assert r.status_code != 200


def test_passwords_of_others_are_not_set_in_the_admin():
    client = staff_client(superuser())
    patient = make_user()
    url = f"{USERS}{patient.pk}/password/"
    assert client.get(url).status_code == 403
    r = client.post(url, {"password1": "Chosen-by-staff-1", "password2": "Chosen-by-staff-1"})
    assert r.status_code == 403
    login(Client(), patient.email)  # still the patient's own password


def test_doctor_added_in_the_admin_must_change_password_and_is_audited():
    admin = superuser()
    client = staff_client(admin)
    r = client.post(
        f"{USERS}add/",
        {
            "email": "Dr.Nour@Example.com",
            "role": Role.DOCTOR,
            "first_name": "Nour",
            "last_name": "Saleh",
            "password1": "Temporary-pw-2026",
            "password2": "Temporary-pw-2026",
        },
    )
    assert r.status_code == 302, r.context["adminform"].form.errors
    doctor = User.objects.get(email="dr.nour@example.com")
    assert r["Location"] == change_url(doctor)
    assert (doctor.role, doctor.must_change_password, doctor.first_name) == (
        Role.DOCTOR,
        True,
        "Nour",
    )
    assert EmailAddress.objects.get(user=doctor).verified
    event = AuditEvent.objects.get(action="user.created_by_admin", target_id=str(doctor.pk))
    assert (event.actor_id, event.data) == (admin.pk, {"role": "doctor"})

    api = Client()
    tokens = login(api, "dr.nour@example.com", "Temporary-pw-2026")
    r = api.patch(
        "/api/v1/me",
        {"first_name": "N"},
        content_type="application/json",
        headers=bearer(tokens["access"]),
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "auth.password_change_required"


def test_totp_secrets_of_staff_are_not_shown():
    client = staff_client(superuser())
    other = make_user(role=Role.ADMIN)
    device = TOTPDevice.objects.create(user=other, name="phone", confirmed=True)
    base = f"/admin/otp_totp/totpdevice/{device.pk}"
    page = client.get(f"{base}/change/")
    assert page.status_code == 200
    assert device.key not in page.content.decode()
    assert "key" not in page.context["adminform"].form.fields
    assert client.get(f"{base}/config/").status_code == 403
    assert client.get(f"{base}/qrcode/").status_code == 403
    assert device.key not in client.get("/admin/otp_totp/totpdevice/").content.decode()


@pytest.mark.parametrize(
    "perms, url",
    [
        (("auth.view_group", "auth.change_group"), "/admin/auth/group/"),
        (("account.view_emailaddress", "account.add_emailaddress"), "/admin/account/emailaddress/"),
        (("otp_totp.view_totpdevice", "otp_totp.add_totpdevice"), "/admin/otp_totp/totpdevice/"),
        (("socialaccount.view_socialaccount",), "/admin/socialaccount/socialaccount/"),
    ],
)  # fmt: skip
def test_what_holds_access_is_the_admins_only_whatever_a_helpers_groups_hold(perms, url):
    """A helper whose group may change groups would give itself every permission; one that
    may add e-mail addresses would add a verified one to an admin's account and reset its
    password."""
    assert staff_client(helper_with(*perms)).get(url).status_code == 403
    assert staff_client(superuser()).get(url).status_code == 200


def test_a_helper_cannot_give_its_own_group_a_permission():
    helper = helper_with("auth.view_group", "auth.change_group")
    group = helper.groups.get()
    client = staff_client(helper)
    everything = Permission.objects.get(codename="change_user")
    r = client.post(
        f"/admin/auth/group/{group.pk}/change/",
        {"name": group.name, "permissions": [p.pk for p in group.permissions.all()] + [everything.pk]},
    )  # fmt: skip
    assert r.status_code == 403
    assert not group.permissions.filter(pk=everything.pk).exists()


def test_no_account_is_deleted_on_the_admin_site_not_even_by_a_superuser():
    """A row deleted would take the patient's appointments and medical files with it: an
    account is closed or erased, its records kept."""
    client = staff_client(superuser())
    patient = make_user()
    assert client.post(f"{USERS}{patient.pk}/delete/", {"post": "yes"}).status_code == 403
    r = client.post(USERS, {"action": "delete_selected", "_selected_action": [patient.pk]})
    assert r.status_code in (200, 302)
    assert User.objects.filter(pk=patient.pk).exists()
