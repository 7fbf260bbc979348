"""The admin site's sign-ins, groups and new accounts: audited and answered as the API's are."""

from __future__ import annotations

import json

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth.models import Group, Permission
from django.db import IntegrityError
from django.test import Client
from django.utils import translation
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.adapter import login_digest
from accounts.models import Role, User
from audit.models import AuditEvent
from tests.accounts.admin_site import staff_client, superuser
from tests.factories import PASSWORD, login, make_user, totp_code

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"
ENROL = "/admin/otp/enrol/"
GROUPS = "/admin/auth/group/"


def staff_with_device(**extra: object) -> tuple[User, TOTPDevice]:
    user = make_user(role=Role.ADMIN, **extra)
    return user, TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def admin_login(client: Client, email: str, password: str, token: str):
    return client.post(
        LOGIN, {"username": email, "password": password, "otp_token": token, "next": "/admin/"}
    )


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


def raw(event: AuditEvent) -> str:
    return json.dumps(
        [event.target_id, event.target_type, event.user_agent, event.data], default=str
    )


# --- sign-ins, failures and sign-outs (defect 1) ------------------------------------------


def test_admin_sign_in_is_audited():
    user, device = staff_with_device()
    client = Client()
    r = admin_login(client, user.email, PASSWORD, totp_code(device))
    assert r.status_code == 302
    [event] = events("auth.login")
    assert (event.actor_id, event.target_type, event.target_id) == (user.pk, "user", str(user.pk))
    assert event.actor_role == Role.ADMIN
    assert event.data == {"site": "admin"}


@pytest.mark.parametrize("wrong", ["password", "code"])
def test_a_wrong_password_or_code_on_the_admin_login_is_audited_with_a_digest(wrong):
    user, device = staff_with_device(email="Staff.Member@example.com")
    email = "STAFF.member@example.com"  # as typed: the digest is of the folded address
    password = "wrong-password" if wrong == "password" else PASSWORD
    token = totp_code(device)
    if wrong == "code":
        token = f"{(int(token) + 1) % 1_000_000:06d}"
    r = admin_login(Client(), email, password, token)
    assert r.status_code == 200
    assert not events("auth.login")
    [event] = events("auth.login_failed")
    assert (event.actor_id, event.target_type, event.target_id) == (None, "user", str(user.pk))
    assert event.data == {
        "site": "admin",
        "page": "login",
        "method": "password" if wrong == "password" else "totp",
        "login_digest": login_digest(email),
    }
    assert "staff.member" not in raw(event).lower()
    assert "wrong-password" not in raw(event) and PASSWORD not in raw(event)


def test_an_unknown_address_on_the_admin_login_is_audited_by_digest_only():
    r = admin_login(Client(), "nobody@example.com", "whatever-1", "123456")
    assert r.status_code == 200
    [event] = events("auth.login_failed")
    assert (event.target_type, event.target_id) == ("", "")
    assert event.data["login_digest"] == login_digest("nobody@example.com")
    assert "nobody" not in raw(event)


def test_a_wrong_password_on_the_enrolment_page_is_a_failed_sign_in():
    user = make_user(role=Role.ADMIN)
    r = Client().post(ENROL, {"step": "password", "email": user.email, "password": "nope-nope"})
    assert r.status_code == 200
    [event] = events("auth.login_failed")
    assert event.target_id == str(user.pk)
    assert event.data == {
        "site": "admin",
        "page": "enrol",
        "method": "password",
        "login_digest": login_digest(user.email),
    }
    assert str(user.email) not in raw(event)


def test_admin_sign_out_is_audited():
    user, device = staff_with_device()
    client = Client()
    assert admin_login(client, user.email, PASSWORD, totp_code(device)).status_code == 302
    r = client.post("/admin/logout/")
    assert r.status_code == 200
    assert "_auth_user_id" not in client.session
    [event] = events("auth.logout")
    assert (event.actor_id, event.target_id, event.data) == (
        user.pk,
        str(user.pk),
        {"site": "admin"},
    )


def test_an_api_sign_in_is_audited_once(client):
    user = make_user(role=Role.DOCTOR)
    login(client, user.email)
    assert [e.target_id for e in events("auth.login")] == [str(user.pk)]


# --- an admin-set password to change first (check 7) --------------------------------------


def test_staff_with_a_device_and_a_password_to_change_cannot_use_the_admin_site():
    user, device = staff_with_device()
    client = staff_client(superuser())  # a session past both factors...
    User.objects.filter(pk=client.session["_auth_user_id"]).update(must_change_password=True)
    r = client.get("/admin/")
    assert r.status_code == 302 and r["Location"].startswith(LOGIN)  # ...sent away

    user.must_change_password = True
    user.save(update_fields=["must_change_password"])
    fresh = Client()
    r = admin_login(fresh, user.email, PASSWORD, totp_code(device))
    assert r.status_code == 200
    assert "_auth_user_id" not in fresh.session
    [error] = r.context["form"].non_field_errors()
    assert "change its password" in error
    with translation.override("ar"):
        assert "كلمة المرور" in str(r.context["form"].error_messages["password_change_required"])


# --- groups (defect 2) --------------------------------------------------------------------


def perm(label: str) -> Permission:
    app_label, codename = label.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=codename)


def test_changing_a_groups_permissions_is_audited():
    actor = superuser()
    client = staff_client(actor)
    group = Group.objects.create(name="support")
    group.permissions.add(perm("accounts.view_user"), perm("doctors.view_specialty"))
    r = client.post(
        f"{GROUPS}{group.pk}/change/",
        {
            "name": "support",
            "permissions": [perm("accounts.view_user").pk, perm("accounts.change_user").pk],
        },
    )
    assert r.status_code == 302, r.content[:500]
    assert set(group.permissions.values_list("codename", flat=True)) == {
        "view_user",
        "change_user",
    }
    [event] = events("group.permissions_changed")
    assert (event.actor_id, event.target_type, event.target_id) == (
        actor.pk,
        "group",
        str(group.pk),
    )
    assert event.data == {
        "name": "support",
        "created": False,
        "added": ["accounts.change_user"],
        "removed": ["doctors.view_specialty"],
    }
    # Saved as it was: nothing to audit.
    r = client.post(
        f"{GROUPS}{group.pk}/change/",
        {"name": "support", "permissions": [p.pk for p in group.permissions.all()]},
    )
    assert r.status_code == 302
    assert len(events("group.permissions_changed")) == 1


def test_deleting_groups_is_audited_one_by_one_or_several_at_once():
    actor = superuser()
    client = staff_client(actor)
    one = Group.objects.create(name="one")
    one.permissions.add(perm("accounts.view_user"))
    make_user(role=Role.HELPER).groups.add(one)
    r = client.post(f"{GROUPS}{one.pk}/delete/", {"post": "yes"})
    assert r.status_code == 302
    assert not Group.objects.filter(pk=one.pk).exists()
    [event] = events("group.deleted")
    assert (event.actor_id, event.target_id) == (actor.pk, str(one.pk))
    assert event.data == {"name": "one", "permissions": ["accounts.view_user"], "members": 1}

    two, three = Group.objects.create(name="two"), Group.objects.create(name="three")
    r = client.post(
        GROUPS,
        {"action": "delete_selected", "_selected_action": [two.pk, three.pk], "post": "yes"},
    )
    assert r.status_code == 302
    assert not Group.objects.filter(pk__in=[two.pk, three.pk]).exists()
    assert [e.data["name"] for e in events("group.deleted")] == ["one", "two", "three"]


# --- a new account's address taken (defect 5) ---------------------------------------------


def add_user(client: Client, email: str):
    return client.post(
        "/admin/accounts/user/add/",
        {
            "email": email,
            "role": Role.PATIENT,
            "first_name": "Ann",
            "last_name": "Lee",
            "password1": "Fresh-Start-Pass-42",
            "password2": "Fresh-Start-Pass-42",
        },
    )


def test_another_accounts_verified_second_address_is_a_form_error_not_a_500():
    client = staff_client(superuser())
    owner = make_user()
    EmailAddress.objects.create(user=owner, email="second@example.com", verified=True)
    r = add_user(client, "Second@Example.com")
    assert r.status_code == 200
    assert "email" in r.context["adminform"].form.errors
    assert not User.objects.filter(email__iexact="second@example.com").exists()


def test_an_address_taken_meanwhile_is_a_form_error_not_a_500(monkeypatch):
    client = staff_client(superuser())

    def taken(*args: object, **kwargs: object) -> User:
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(User.objects, "create_user", taken)
    r = add_user(client, "racer@example.com")
    assert r.status_code == 200
    errors = r.context["adminform"].form.errors
    assert "email" in errors
    with translation.override("ar"):
        assert "البريد" in str(r.context["adminform"].form.errors["email"][0])
    assert not events("user.created_by_admin")
