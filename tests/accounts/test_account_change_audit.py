"""Changes of what signs an account in are in the audit trail (ID-9): e-mail addresses added,
verified, made the login address or removed, and Google accounts connected or disconnected.
The trail outlives an erasure: it names the address by id and flags, never by value, and the
Google account by provider, never by its subject."""

from __future__ import annotations

import json
from typing import Any

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django.test import Client

from accounts.models import User
from audit.models import AuditEvent
from tests.accounts.test_google import _id_token, _sign_in, google_certs, google_key  # noqa: F401
from tests.factories import AUTH, PASSWORD, bearer, last_code, login, make_user, post

pytestmark = pytest.mark.django_db

GOOGLE_SUBJECT = "109876543210987654321"


def _events(user: User) -> dict[str, dict[str, Any]]:
    events = AuditEvent.objects.filter(target_type="user", target_id=str(user.pk))
    return {e.action: e.data for e in events.exclude(action__startswith="auth.")}


def _holds_no_address(events: dict[str, dict[str, Any]], *values: str) -> None:
    text = json.dumps(events)
    assert "@" not in text
    for value in values:
        assert value not in text


def _reauthenticated(api: Client, user: User) -> str:
    access = login(api, user.email)["access"]
    r = post(api, f"{AUTH}/auth/reauthenticate", {"password": PASSWORD}, **bearer(access))
    assert r.status_code == 200, r.json()
    return access


def test_a_changed_login_address_is_audited_without_the_addresses(api):
    user = make_user(email="before@example.com")
    access = _reauthenticated(api, user)

    r = post(api, f"{AUTH}/account/email", {"email": "after@example.com"}, **bearer(access))
    assert r.status_code == 200, r.json()
    r = post(api, f"{AUTH}/auth/email/verify", {"key": last_code()}, **bearer(access))
    assert r.status_code == 200, r.json()

    new = EmailAddress.objects.get(email="after@example.com")
    events = _events(user)
    assert events["user.email_added"] == {
        "address": {"id": new.pk, "verified": True, "primary": True}
    }
    assert events["user.email_verified"] == events["user.email_added"]
    assert events["user.email_changed"]["to"] == {"id": new.pk, "verified": True, "primary": True}
    actors = AuditEvent.objects.filter(action__startswith="user.email_").values_list(
        "actor_id", flat=True
    )
    assert set(actors) == {user.pk}
    _holds_no_address(events, "before@example.com", "after@example.com")


def test_a_removed_address_is_audited_without_the_address(api):
    user = make_user(email="keep@example.com")
    EmailAddress.objects.create(user=user, email="spare@example.com", verified=False)
    access = _reauthenticated(api, user)

    r = api.delete(
        f"{AUTH}/account/email",
        json.dumps({"email": "spare@example.com"}),
        content_type="application/json",
        headers=bearer(access),
    )

    assert r.status_code == 200, r.json()
    assert not EmailAddress.objects.filter(email="spare@example.com").exists()
    events = _events(user)
    assert events["user.email_removed"]["address"]["verified"] is False
    assert events["user.email_removed"]["address"]["primary"] is False
    _holds_no_address(events, "spare@example.com")


def test_connecting_and_disconnecting_google_is_audited_without_its_subject(
    api,
    google_certs,  # noqa: F811
    google_key,  # noqa: F811
):
    user = make_user(email="layla@example.com")

    r = _sign_in(api, _id_token(google_key[0]))  # the same verified address: connected
    assert r.status_code == 200, r.content
    account = SocialAccount.objects.get(user=user)
    access = _reauthenticated(Client(), user)
    r = Client().delete(
        f"{AUTH}/account/providers",
        json.dumps({"provider": "google", "account": GOOGLE_SUBJECT}),
        content_type="application/json",
        headers=bearer(access),
    )

    assert r.status_code == 200, r.json()
    assert not SocialAccount.objects.filter(user=user).exists()
    events = _events(user)
    assert events["user.social_connected"] == {
        "provider": "google",
        "social_account_id": account.pk,
    }
    assert events["user.social_disconnected"] == {"provider": "google"}
    _holds_no_address(events, GOOGLE_SUBJECT)
