import uuid
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.test import RequestFactory

from audit.services import REDACTED, client_ip, record, record_from_request, scrub


def test_scrub_redacts_secret_keys_at_any_depth_and_any_case():
    data = {
        "email": "a@example.com",
        "Password": "hunter2",
        "new_password1": "x",
        "refresh_token": "abc",
        "clientSecret": "s",
        "code": "123456",
        "OTP": "654321",
        "nested": {"access_TOKEN": "t", "keep": 1, "items": [{"totp_code": "1"}, "plain"]},
    }
    assert scrub(data) == {
        "email": "a@example.com",
        "Password": REDACTED,
        "new_password1": REDACTED,
        "refresh_token": REDACTED,
        "clientSecret": REDACTED,
        "code": REDACTED,
        "OTP": REDACTED,
        "nested": {
            "access_TOKEN": REDACTED,
            "keep": 1,
            "items": [{"totp_code": REDACTED}, "plain"],
        },
    }


@pytest.mark.django_db
def test_record_stores_scrubbed_json_native_data():
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    ref = uuid.uuid4()
    event = record(
        action="auth.password_changed",
        data={
            "password": "hunter2",
            "otp": "123456",
            "at": when,
            "ref": ref,
            "fee": Decimal("1.50"),
        },
    )
    event.refresh_from_db()
    assert event.data == {
        "password": REDACTED,
        "otp": REDACTED,
        "at": "2030-01-02T03:04:05Z",
        "ref": str(ref),
        "fee": "1.50",
    }
    assert "hunter2" not in str(event.data) and "123456" not in str(event.data)


@pytest.mark.django_db
def test_record_normalises_fields():
    actor = uuid.uuid4()
    event = record(
        action="user.role_changed",
        actor_id=str(actor),
        actor_role="admin",
        target_type="user",
        target_id=uuid.UUID(int=7),  # type: ignore[arg-type]
        ip="2001:0DB8::0001",
        user_agent="x" * 1000,
    )
    event.refresh_from_db()
    assert event.actor_id == actor
    assert event.target_id == "00000000-0000-0000-0000-000000000007"
    assert event.ip == "2001:db8::1"
    assert event.user_agent == "x" * 256
    assert event.created_at.tzinfo is not None
    assert event.compute_hash() == event.hash


@pytest.mark.django_db
@pytest.mark.parametrize("action", ["", "login", "Auth.login", "auth.", "auth login", ".x"])
def test_record_refuses_actions_that_are_not_dotted_codes(action):
    with pytest.raises(ValueError):
        record(action=action)


def _request(remote="203.0.113.9", forwarded=None, ua="TestAgent/1.0", user=None):
    extra = {"REMOTE_ADDR": remote, "HTTP_USER_AGENT": ua}
    if forwarded is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded
    request = RequestFactory().get("/", **extra)
    request.user = user or SimpleNamespace(is_authenticated=False)  # type: ignore[assignment]
    return request


def test_client_ip_ignores_x_forwarded_for_without_trusted_proxies(settings):
    settings.AUDIT_TRUSTED_PROXY_COUNT = 0
    assert client_ip(_request(forwarded="198.51.100.1")) == "203.0.113.9"


def test_client_ip_takes_the_address_seen_by_the_outermost_trusted_proxy(settings):
    settings.AUDIT_TRUSTED_PROXY_COUNT = 2
    spoofed = "6.6.6.6, 198.51.100.1, 10.0.0.2"
    assert client_ip(_request(remote="10.0.0.3", forwarded=spoofed)) == "198.51.100.1"
    assert client_ip(_request(remote="10.0.0.3", forwarded="198.51.100.1")) == "10.0.0.3"


def test_client_ip_of_garbage_is_none(settings):
    settings.AUDIT_TRUSTED_PROXY_COUNT = 1
    assert client_ip(_request(remote="10.0.0.3", forwarded="not-an-ip")) is None


@pytest.mark.django_db
def test_record_from_request_takes_actor_ip_and_user_agent():
    user = SimpleNamespace(is_authenticated=True, id=uuid.uuid4(), role="doctor")
    event = record_from_request(
        _request(user=user), action="record.viewed", target_type="record", target_id="r1"
    )
    assert (event.actor_id, event.actor_role) == (user.id, "doctor")
    assert (event.ip, event.user_agent) == ("203.0.113.9", "TestAgent/1.0")
    assert (event.target_type, event.target_id) == ("record", "r1")


@pytest.mark.django_db
def test_record_from_request_for_anonymous_and_explicit_actor():
    anonymous = record_from_request(_request(), action="auth.login_failed", data={"email": "x@y"})
    assert (anonymous.actor_id, anonymous.actor_role) == (None, "")
    who = uuid.uuid4()
    login = record_from_request(_request(), action="auth.login", actor_id=who, actor_role="patient")
    assert (login.actor_id, login.actor_role) == (who, "patient")
