"""run_once keeps a keyed digest of the body: a reader of the table cannot confirm a guess of
a booking's reason with it; a retry still replays, another body is still refused, and a
record stored before (a plain SHA-256) still replays for its 24 h."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.test import override_settings

from core.idempotency import IdempotencyMismatch, run_once
from core.models import IdempotencyRecord
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def plain(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def test_the_stored_digest_is_keyed_and_still_replays():
    user, other = make_user(), make_user()
    payload = {"path": "/api/v1/appointments", "body": {"reason": "HIV follow-up"}}
    calls: list[int] = []

    def action() -> tuple[int, dict]:
        calls.append(1)
        return 201, {"n": len(calls)}

    assert run_once(user=user, key="k", payload=payload, action=action)[:2] == (201, {"n": 1})
    assert run_once(user=other, key="k", payload=payload, action=action)[:2] == (201, {"n": 2})
    stored = IdempotencyRecord.objects.get(user=user, key="k").request_hash
    assert stored != plain(payload) and "HIV" not in stored and len(stored) <= 64
    # Bound to the user (and the key): the same body leaves another digest.
    assert stored != IdempotencyRecord.objects.get(user=other, key="k").request_hash
    assert run_once(user=user, key="k", payload=payload, action=action) == (201, {"n": 1}, True)
    guess = {"path": "/api/v1/appointments", "body": {"reason": "flu"}}
    with pytest.raises(IdempotencyMismatch):
        run_once(user=user, key="k", payload=guess, action=action)
    assert len(calls) == 2


def test_a_retry_across_a_secret_key_rotation_replays():
    user = make_user()
    with override_settings(SECRET_KEY="old-secret-" + "x" * 50):
        run_once(user=user, key="k", payload={"a": 1}, action=lambda: (201, {"first": True}))
    with override_settings(
        SECRET_KEY="new-secret-" + "y" * 50, SECRET_KEY_FALLBACKS=["old-secret-" + "x" * 50]
    ):
        assert run_once(user=user, key="k", payload={"a": 1}, action=lambda: (500, {}))[:2] == (
            201,
            {"first": True},
        )
        with pytest.raises(IdempotencyMismatch):
            run_once(user=user, key="k", payload={"a": 2}, action=lambda: (500, {}))


def test_a_record_stored_before_keyed_digests_still_replays():
    """Stored by the release before (an unkeyed SHA-256): the retry across the deploy gets the
    first answer; another body is still refused."""
    user = make_user()
    payload = {"path": "/api/v1/appointments", "body": {"reason": "migraine"}}
    run_once(user=user, key="old", payload=payload, action=lambda: (201, {"id": "first"}))
    IdempotencyRecord.objects.filter(user=user, key="old").update(request_hash=plain(payload))
    assert run_once(user=user, key="old", payload=payload, action=lambda: (500, {})) == (
        201,
        {"id": "first"},
        True,
    )
    with pytest.raises(IdempotencyMismatch):
        run_once(user=user, key="old", payload={**payload, "body": {}}, action=lambda: (500, {}))
