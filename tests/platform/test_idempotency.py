"""run_once: one answer per key for 24 h, then the key is free again."""

from datetime import timedelta

import pytest
from django.utils import timezone

from core.idempotency import IdempotencyMismatch, run_once
from core.models import IdempotencyRecord
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_a_key_answers_once_then_expires():
    user = make_user()
    calls: list[int] = []

    def action() -> tuple[int, dict]:
        calls.append(1)
        return 201, {"n": len(calls)}

    assert run_once(user=user, key="k", payload={"a": 1}, action=action) == (201, {"n": 1})
    assert run_once(user=user, key="k", payload={"a": 1}, action=action) == (201, {"n": 1})
    with pytest.raises(IdempotencyMismatch):
        run_once(user=user, key="k", payload={"a": 2}, action=action)
    assert run_once(user=make_user(), key="k", payload={"a": 1}, action=action) == (201, {"n": 2})
    IdempotencyRecord.objects.filter(user=user).update(
        created_at=timezone.now() - timedelta(hours=25)
    )
    assert run_once(user=user, key="k", payload={"a": 2}, action=action) == (201, {"n": 3})
    assert IdempotencyRecord.objects.filter(user=user).count() == 1
