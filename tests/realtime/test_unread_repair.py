"""A counter write Redis missed (a blip after the commit) is repaired: a task resets the keys
a few seconds later (core.invalidation), and the next read counts again from the database."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from django.core.cache import cache
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from realtime.services import notifications_mark_all_read, notify
from realtime.unread import unread_counts
from tests.factories import make_user
from tests.platform.test_tasks import run_worker_batch

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "rt:unread:notifications:{}"


def tell(user) -> None:
    notify(users=[user], kind="notification.created", data={}, render=lambda u: ("t", ""))


def redis_fails(monkeypatch, command: str) -> None:
    """Redis is unreachable for this command (the server is outside our code)."""

    def unreachable(*args, **kwargs):
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(redis.Redis, command, unreachable)


def repairs() -> list[DBTaskResult]:
    return list(DBTaskResult.objects.filter(task_path="core.invalidation.cache_invalidate"))


def run_repairs_now() -> None:
    """Time passes: the repair is due."""
    DBTaskResult.objects.filter(status="READY").update(run_after=timezone.now())
    run_worker_batch()


def test_an_increment_redis_missed_is_repaired_by_a_task_soon_after(monkeypatch):
    user = make_user()
    tell(user)
    assert unread_counts(user_id=user.pk) == {"notifications": 1, "chat": 0}  # now cached

    with monkeypatch.context() as blip:
        redis_fails(blip, "evalsha")
        tell(user)  # committed; its increment is lost
    assert cache.get(KEY.format(user.pk)) == 1  # wrong: the database has 2
    [repair] = repairs()
    assert repair.status == "READY"
    assert repair.args_kwargs["args"] == ["unread.forget", [KEY.format(user.pk)], 2]
    assert repair.run_after > timezone.now() + timedelta(seconds=3)

    run_repairs_now()
    assert cache.get(KEY.format(user.pk)) is None
    assert unread_counts(user_id=user.pk)["notifications"] == 2


def test_a_reset_redis_missed_is_repaired_too(monkeypatch):
    user = make_user()
    tell(user)
    tell(user)
    assert unread_counts(user_id=user.pk)["notifications"] == 2

    with monkeypatch.context() as blip:
        redis_fails(blip, "evalsha")  # the reset and its generation's bump are one script
        notifications_mark_all_read(user=user)
    assert cache.get(KEY.format(user.pk)) == 2  # wrong: all read

    run_repairs_now()
    assert [r.status for r in repairs()] == ["SUCCESSFUL"]
    assert unread_counts(user_id=user.pk)["notifications"] == 0


def test_writes_redis_took_enqueue_nothing():
    user = make_user()
    tell(user)
    unread_counts(user_id=user.pk)
    tell(user)
    notifications_mark_all_read(user=user)
    assert repairs() == []


@pytest.mark.parametrize("backend", ["redis", "embedded"])
def test_a_counter_a_rebuild_raced_below_zero_is_counted_again(backend, settings):
    """A rebuild that counts after a write's commit and caches before the write's adjustment
    counts the write twice: a counter below zero is wrong for sure, and the next read counts
    again instead of showing it."""
    from django.db import transaction

    from realtime.models import Notification
    from realtime.services import notification_mark_read

    if backend == "embedded":
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    user = make_user()
    tell(user)
    cache.delete(KEY.format(user.pk))
    seq = Notification.objects.get(user=user).seq
    with transaction.atomic():
        # runs after the commit, before the mark's adjustment (-1) registered after it
        transaction.on_commit(lambda: unread_counts(user_id=user.pk))
        notification_mark_read(user=user, event_id=seq)
    assert unread_counts(user_id=user.pk)["notifications"] == 0
    assert cache.get(KEY.format(user.pk)) == 0
