"""A cache invalidation that meets Redis away at commit is tried again by a task, later each
time, until done or past the life of what it invalidates (core.invalidation)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from accounts.models import Role
from core import invalidation
from core.invalidation import cache_invalidate
from doctors import services
from doctors.models import Verification
from tests.doctors.factories import doctor
from tests.factories import make_user

pytestmark = pytest.mark.django_db
PATH = "core.invalidation.cache_invalidate"


def _redis_away(*args, **kwargs):
    raise ConnectionError("redis timeout")


def _queued() -> list[DBTaskResult]:
    return list(DBTaskResult.objects.filter(task_path=PATH).order_by("enqueued_at"))


def test_a_doctor_rejected_while_redis_blinked_leaves_the_directory_soon_after(
    api, monkeypatch, django_capture_on_commit_callbacks
):
    profile = doctor()
    url = f"/api/v1/doctors/{profile.id}"
    assert api.get(url).status_code == 200  # cached
    with monkeypatch.context() as away:
        away.setattr(cache, "incr", _redis_away)
        away.setattr(cache, "set", _redis_away)
        with django_capture_on_commit_callbacks(execute=True):
            services.doctor_verify(
                actor=make_user(role=Role.ADMIN),
                doctor_id=profile.id,
                decision=Verification.REJECTED,
                reason="The licence could not be confirmed.",
            )
    profile.refresh_from_db()
    assert profile.verification == Verification.REJECTED  # the change is saved
    assert api.get(url).status_code == 200  # still the cached copy, for now

    [retry] = _queued()
    assert retry.args_kwargs["args"] == ["bump", [services.CACHE_VERSION_KEY], 2]
    assert retry.run_after > timezone.now() + timedelta(seconds=3)  # a little later
    assert cache_invalidate.call(*retry.args_kwargs["args"]) is True  # Redis is back
    assert api.get(url).status_code == 404
    assert len(_queued()) == 1  # done: nothing more queued


def test_each_retry_waits_longer_and_the_last_gives_up(monkeypatch, caplog):
    monkeypatch.setattr(cache, "delete_many", _redis_away)
    assert cache_invalidate.call("delete", ["some:key"], 3) is False
    [retry] = _queued()
    assert retry.args_kwargs["args"] == ["delete", ["some:key"], 4]
    wait = retry.run_after - timezone.now()
    assert timedelta(seconds=15) < wait <= timedelta(seconds=20)  # 5 s x 2 x 2

    assert cache_invalidate.call("delete", ["some:key"], invalidation.ATTEMPTS) is False
    assert len(_queued()) == 1  # given up: not queued again
    assert "cache invalidation given up" in caplog.text
