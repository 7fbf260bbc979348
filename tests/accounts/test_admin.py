"""Roles, helper permissions, user administration, doctor accounts and invitations."""

import pytest

from accounts.models import Invitation, Role, User
from audit.models import AuditEvent
from tests.accounts.admin_site import helper_with
from tests.factories import AUTH, PASSWORD, bearer, last_code, login, make_user, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_tokens(api):
    admin = make_user(role=Role.ADMIN)
    return admin, login(api, admin.email)


def test_patient_calling_an_admin_endpoint_gets_403(api):
    patient = make_user()
    r = api.get("/api/v1/admin/users", headers=bearer(login(api, patient.email)["access"]))
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "auth.forbidden"


def test_anonymous_admin_call_gets_401(api):
    assert api.get("/api/v1/admin/users").status_code == 401


def test_helper_without_the_permission_gets_403_and_with_it_200(api):
    lacking = helper_with("accounts.view_invitation")
    r = api.get("/api/v1/admin/users", headers=bearer(login(api, lacking.email)["access"]))
    assert r.status_code == 403
    reader = helper_with("accounts.view_user")
    headers = bearer(login(api, reader.email)["access"])
    assert api.get("/api/v1/admin/users", headers=headers).status_code == 200
    target = make_user()
    # may read, may not change
    r = api.post(f"/api/v1/admin/users/{target.id}/deactivate", headers=headers)
    assert r.status_code == 403
    target.refresh_from_db()
    assert target.is_active


def test_admin_lists_searches_and_pages_users(api, admin_tokens):
    _, tokens = admin_tokens
    for i in range(5):
        make_user(email=f"amal{i}@clinic.example", first_name="Amal")
    headers = bearer(tokens["access"])
    r = api.get("/api/v1/admin/users?q=clinic.example&limit=2", headers=headers)
    page = r.json()
    assert len(page["items"]) == 2 and page["next"]
    seen = [u["email"] for u in page["items"]]
    while page["next"]:
        page = api.get(
            f"/api/v1/admin/users?q=clinic.example&limit=2&cursor={page['next']}", headers=headers
        ).json()
        seen += [u["email"] for u in page["items"]]
    assert sorted(seen) == sorted(f"amal{i}@clinic.example" for i in range(5))
    assert (
        api.get("/api/v1/admin/users?role=admin", headers=headers).json()["items"][0]["role"]
        == "admin"
    )


def test_forged_cursor_is_400(api, admin_tokens):
    r = api.get("/api/v1/admin/users?cursor=forged", headers=bearer(admin_tokens[1]["access"]))
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "request.invalid_cursor"


def test_admin_edits_role_and_it_is_audited(api, admin_tokens):
    admin, tokens = admin_tokens
    user = make_user()
    r = api.patch(
        f"/api/v1/admin/users/{user.id}",
        {"role": "helper", "first_name": "Hala"},
        content_type="application/json",
        headers=bearer(tokens["access"]),
    )
    assert r.status_code == 200
    assert r.json()["role"] == "helper"
    user.refresh_from_db()
    assert user.is_staff
    event = AuditEvent.objects.get(action="user.role_changed")
    assert (str(event.actor_id), event.target_id, event.data) == (
        str(admin.id),
        str(user.id),
        {"before": "patient", "after": "helper"},
    )


@pytest.mark.parametrize("role", ["admin", "helper", "doctor"])
def test_helper_allowed_to_change_users_cannot_change_a_role(api, role):
    helper = helper_with("accounts.view_user", "accounts.change_user")
    headers = bearer(login(api, helper.email)["access"])
    user = make_user()
    r = api.patch(
        f"/api/v1/admin/users/{user.id}",
        {"role": role},
        content_type="application/json",
        headers={**headers, "Accept-Language": "ar"},
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "auth.admin_only"
    assert "مدير" in r.json()["error"]["message"]
    user.refresh_from_db()
    assert user.role == "patient"
    assert not AuditEvent.objects.filter(action="user.role_changed").exists()
    r = api.patch(
        f"/api/v1/admin/users/{user.id}",
        {"first_name": "Hala"},
        content_type="application/json",
        headers=headers,
    )
    assert r.status_code == 200


def test_helper_cannot_deactivate_an_admin(api):
    helper = helper_with("accounts.view_user", "accounts.change_user")
    headers = bearer(login(api, helper.email)["access"])
    admin = make_user(role=Role.ADMIN)
    r = api.post(f"/api/v1/admin/users/{admin.id}/deactivate", headers=headers)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "auth.admin_only"
    admin.refresh_from_db()
    assert admin.is_active
    patient = make_user()
    r = api.post(f"/api/v1/admin/users/{patient.id}/deactivate", headers=headers)
    assert r.status_code == 200 and r.json()["is_active"] is False


def test_a_demoted_admin_is_no_longer_a_superuser(api):
    # By a superuser: an admin who is not one may not change a superuser's account.
    actor = make_user(role=Role.ADMIN, is_superuser=True)
    other = User.objects.create_superuser("root@example.com", PASSWORD)
    r = api.patch(
        f"/api/v1/admin/users/{other.id}",
        {"role": "helper"},
        content_type="application/json",
        headers=bearer(login(api, actor.email)["access"]),
    )
    assert r.status_code == 200
    other.refresh_from_db()
    assert (other.role, other.is_staff, other.is_superuser) == ("helper", True, False)


def test_admin_cannot_demote_itself(api, admin_tokens):
    admin, tokens = admin_tokens
    r = api.patch(
        f"/api/v1/admin/users/{admin.id}",
        {"role": "patient"},
        content_type="application/json",
        headers=bearer(tokens["access"]),
    )
    assert r.status_code == 409
    admin.refresh_from_db()
    assert admin.role == "admin"


def test_bad_admin_input_is_422(api, admin_tokens):
    user = make_user()
    headers = bearer(admin_tokens[1]["access"])
    r = api.patch(
        f"/api/v1/admin/users/{user.id}",
        {"role": "superhero", "time_zone": "Mars/Base"},
        content_type="application/json",
        headers=headers,
    )
    assert r.status_code == 422
    assert set(r.json()["error"]["fields"]) == {"role", "time_zone"}
    assert api.get("/api/v1/admin/users/not-a-uuid", headers=headers).status_code == 422
    assert (
        api.get(
            "/api/v1/admin/users/00000000-0000-0000-0000-000000000000", headers=headers
        ).status_code
        == 404
    )


def test_deactivation_stops_access_and_refresh_tokens_at_once(api, admin_tokens):
    user = make_user()
    tokens = login(api, user.email)
    r = api.post(
        f"/api/v1/admin/users/{user.id}/deactivate", headers=bearer(admin_tokens[1]["access"])
    )
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert api.get("/api/v1/me", headers=bearer(tokens["access"])).status_code == 401
    assert (
        post(api, f"{AUTH}/tokens/refresh", {"refresh_token": tokens["refresh"]}).status_code == 400
    )
    assert (
        post(api, f"{AUTH}/auth/login", {"email": user.email, "password": PASSWORD}).status_code
        != 200
    )
    assert AuditEvent.objects.filter(action="user.deactivated", target_id=str(user.id)).exists()
    api.post(f"/api/v1/admin/users/{user.id}/reactivate", headers=bearer(admin_tokens[1]["access"]))
    login(api, user.email)


def test_admin_created_doctor_must_change_password_first(api, admin_tokens):
    r = post(
        api,
        "/api/v1/admin/doctors",
        {"email": "dr.salma@example.com", "first_name": "Salma", "last_name": "Aziz"},
        **bearer(admin_tokens[1]["access"]),
    )
    assert r.status_code == 201
    temporary = r.json()["temporary_password"]
    assert r.json()["user"]["role"] == "doctor"
    tokens = login(api, "dr.salma@example.com", temporary)
    headers = bearer(tokens["access"])

    blocked = api.patch(
        "/api/v1/me", {"first_name": "S"}, content_type="application/json", headers=headers
    )
    assert blocked.status_code == 403
    assert blocked.json()["error"]["code"] == "auth.password_change_required"
    assert api.get(f"{AUTH}/account/authenticators", headers=headers).status_code == 403
    assert api.get("/api/v1/me", headers=headers).json()["must_change_password"] is True

    r = post(
        api,
        f"{AUTH}/account/password/change",
        {"current_password": temporary, "new_password": "Doctor-Own-pw-2026"},
        **headers,
    )
    assert r.status_code == 401  # logged out everywhere: log in again with the new password
    tokens = login(api, "dr.salma@example.com", "Doctor-Own-pw-2026")
    r = api.patch(
        "/api/v1/me",
        {"first_name": "Salma"},
        content_type="application/json",
        headers=bearer(tokens["access"]),
    )
    assert r.status_code == 200
    assert r.json()["must_change_password"] is False


def test_duplicate_doctor_email_is_409(api, admin_tokens):
    existing = make_user()
    r = post(
        api,
        "/api/v1/admin/doctors",
        {"email": existing.email, "first_name": "A", "last_name": "B"},
        **bearer(admin_tokens[1]["access"]),
    )
    assert r.status_code == 409


def _invited_signup(api, admin_access: str, email: str) -> str:
    """An admin invites ``email``, which signs up with the code and verifies its address;
    the code."""
    r = post(api, "/api/v1/admin/invitations", {"email": email}, **bearer(admin_access))
    assert r.status_code == 201
    code = r.json()["code"]
    r = post(
        api,
        f"{AUTH}/auth/signup",
        {"email": email, "password": PASSWORD, "invitation_code": code},
    )
    assert r.status_code == 401
    post(
        api,
        f"{AUTH}/auth/email/verify",
        {"key": last_code()},
        **{"X-Session-Token": r.json()["meta"]["session_token"]},
    )
    return code


def test_doctor_signs_up_with_a_single_use_invitation(api, admin_tokens):
    code = _invited_signup(api, admin_tokens[1]["access"], "new.doc@example.com")
    assert Invitation.objects.get().code_hash != code  # only the hash is stored
    assert User.objects.get(email="new.doc@example.com").role == "doctor"

    r = post(
        api,
        f"{AUTH}/auth/signup",
        {"email": "second@example.com", "password": PASSWORD, "invitation_code": code},
    )
    assert r.status_code == 400
    assert not User.objects.filter(email="second@example.com").exists()


def test_invitation_bound_to_another_email_or_expired_is_refused(api, admin_tokens):
    from datetime import timedelta

    from django.utils import timezone

    r = post(
        api,
        "/api/v1/admin/invitations",
        {"email": "only.me@example.com"},
        **bearer(admin_tokens[1]["access"]),
    )
    code = r.json()["code"]
    r = post(
        api,
        f"{AUTH}/auth/signup",
        {"email": "intruder@example.com", "password": PASSWORD, "invitation_code": code},
    )
    assert r.status_code == 400
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    r = post(
        api,
        f"{AUTH}/auth/signup",
        {"email": "only.me@example.com", "password": PASSWORD, "invitation_code": code},
    )
    assert r.status_code == 400


def test_audit_search_for_admins(api, admin_tokens):
    admin, tokens = admin_tokens
    user = make_user()
    login(api, user.email)
    r = api.get(
        f"/api/v1/admin/audit?action=auth.login&actor_id={user.id}",
        headers=bearer(tokens["access"]),
    )
    assert r.status_code == 200
    items = r.json()["items"]
    assert [e["action"] for e in items] == ["auth.login"]
    assert items[0]["actor_id"] == str(user.id)
    patient_headers = bearer(login(api, user.email)["access"])
    assert api.get("/api/v1/admin/audit", headers=patient_headers).status_code == 403


@pytest.mark.parametrize(
    "query",
    ["until=0.5", "since=yesterday", "limit=0", "limit=100000", "since=2026-01-01T00:00:00"],
)
def test_bad_audit_filters_are_422(api, admin_tokens, query):
    r = api.get(f"/api/v1/admin/audit?{query}", headers=bearer(admin_tokens[1]["access"]))
    assert r.status_code == 422


def test_audit_filter_with_an_extreme_offset_or_year_is_a_clear_422(api, admin_tokens):
    headers = bearer(admin_tokens[1]["access"])
    r = api.get("/api/v1/admin/audit?since=0862-08-01T10%3A48%3A45%2B17%3A39", headers=headers)
    assert r.status_code == 422 and "since" in r.json()["error"]["fields"]
    r = api.get("/api/v1/admin/audit?since=2026-08-01T10%3A48%3A45%2B17%3A39", headers=headers)
    assert r.status_code == 200


def test_helper_cannot_deactivate_or_rename_another_helper(api):
    helper = helper_with("accounts.view_user", "accounts.change_user")
    other = make_user(role=Role.HELPER)
    headers = bearer(login(api, helper.email)["access"])
    r = api.patch(
        f"/api/v1/admin/users/{other.pk}", {"first_name": "Mallory"},
        content_type="application/json", headers=headers,
    )  # fmt: skip
    assert r.status_code == 403 and r.json()["error"]["code"] == "auth.admin_only"
    patient = make_user()
    r = api.patch(
        f"/api/v1/admin/users/{patient.pk}", {"first_name": "Mona"},
        content_type="application/json", headers=headers,
    )  # fmt: skip
    assert r.status_code == 200  # patients and doctors are a helper's to look after


def test_an_erased_doctor_leaves_no_address_in_its_invitation_or_the_trail(api, admin_tokens):
    _invited_signup(api, admin_tokens[1]["access"], "erase.me@example.com")
    doctor = User.objects.get(email="erase.me@example.com")
    headers = bearer(login(api, doctor.email)["access"])
    assert post(api, "/api/v1/me/delete", {"password": PASSWORD}, **headers).status_code == 204
    assert Invitation.objects.get(used_by=doctor).email == ""
    created = AuditEvent.objects.get(action="invitation.created")
    assert "erase.me" not in str(created.data) and created.data["for_email"] is True
