"""Erasure asked of an admin (``POST /api/v1/admin/users/{id}/erase``): a deactivated account
has no live token for its owner to ask with. And the export of one's data is audited."""

from __future__ import annotations

import uuid

import pytest

from accounts.models import Role, User
from accounts.services import user_set_active
from audit.models import AuditEvent
from tests.accounts.admin_site import helper_with
from tests.factories import bearer, login, make_user, post

pytestmark = pytest.mark.django_db


def erase(api, actor, target_id):
    return post(
        api, f"/api/v1/admin/users/{target_id}/erase", **bearer(login(api, actor.email)["access"])
    )


def deleted_events(user):
    return AuditEvent.objects.filter(action="user.deleted", target_id=str(user.pk))


def test_an_admin_erases_a_deactivated_account_once_audited(api):
    admin = make_user(role=Role.ADMIN)
    user = make_user(first_name="Rana", phone="+201000000009", phone_verified=True)
    user_set_active(actor=admin, user=user, active=False)

    r = erase(api, admin, user.id)
    assert r.status_code == 200, r.json()
    body = r.json()
    assert (body["id"], body["email"], body["phone"], body["first_name"]) == (
        str(user.id),
        None,
        None,
        "",
    )
    assert body["is_active"] is False
    user.refresh_from_db()
    assert user.deleted_at is not None and user.email is None
    [event] = deleted_events(user)
    assert (event.actor_id, event.actor_role) == (admin.pk, "admin")
    # Again: nothing more happens (a retry).
    assert erase(api, admin, user.id).status_code == 200
    assert deleted_events(user).count() == 1
    # And never back.
    assert post(
        api,
        f"/api/v1/admin/users/{user.id}/reactivate",
        **bearer(login(api, admin.email)["access"]),
    ).json()["error"]["code"] == ("auth.account_erased")


def test_unknown_self_and_not_allowed(api):
    admin = make_user(role=Role.ADMIN)
    assert erase(api, admin, uuid.uuid4()).status_code == 404
    r = erase(api, admin, admin.id)
    assert (r.status_code, r.json()["error"]["code"]) == (409, "auth.cannot_change_own_access")
    target = make_user()
    patient = make_user()
    r = erase(api, patient, target.id)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "auth.forbidden")
    # A helper, even one allowed to delete users: admins only.
    helper = helper_with("accounts.view_user", "accounts.delete_user")
    r = erase(api, helper, target.id)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "auth.admin_only")
    target.refresh_from_db()
    admin.refresh_from_db()
    assert target.deleted_at is None and admin.deleted_at is None
    assert not AuditEvent.objects.filter(action="user.deleted").exists()


def test_only_a_superuser_erases_an_admin(api):
    admin = make_user(role=Role.ADMIN)
    other_admin = make_user(role=Role.ADMIN)
    r = erase(api, admin, other_admin.id)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "auth.superuser_required")
    r = api.post(
        f"/api/v1/admin/users/{other_admin.id}/erase",
        headers={**bearer(login(api, admin.email)["access"]), "Accept-Language": "ar"},
    )
    assert any("\u0600" <= ch <= "\u06ff" for ch in r.json()["error"]["message"])
    assert User.objects.get(pk=other_admin.pk).deleted_at is None
    # An admin may erase a helper's account; a superuser an admin's.
    helper = make_user(role=Role.HELPER)
    assert erase(api, admin, helper.id).status_code == 200
    superuser = make_user(role=Role.ADMIN, is_superuser=True)
    assert erase(api, superuser, other_admin.id).status_code == 200
    assert User.objects.get(pk=other_admin.pk).deleted_at is not None


def test_the_export_of_ones_data_is_audited(api):
    user = make_user()
    r = api.get("/api/v1/me/export", headers=bearer(login(api, user.email)["access"]))
    assert r.status_code == 200
    [event] = AuditEvent.objects.filter(action="user.exported")
    assert (event.actor_id, event.target_type, event.target_id) == (user.pk, "user", str(user.pk))
    assert event.ip  # from the request


def test_exports_are_rate_limited_per_user(api, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "account_export": "2/h/user"}
    user, other = make_user(), make_user()
    token = login(api, user.email)["access"]
    answers = [api.get("/api/v1/me/export", headers=bearer(token)).status_code for _ in range(3)]
    assert answers == [200, 200, 429]
    r = api.get("/api/v1/me/export", headers=bearer(token))
    assert r.json()["error"]["code"] == "request.rate_limited" and "Retry-After" in r
    assert (
        api.get("/api/v1/me/export", headers=bearer(login(api, other.email)["access"])).status_code
        == 200
    )
