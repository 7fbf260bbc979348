"""A counter rebuild raced by a write: one that counted before the write's commit caches
nothing if the write's adjustment (or reset) came before its caching, so the next read
counts again instead of showing a count one short for ``UNREAD_CACHE_SECONDS``."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache import cache

from realtime import unread
from realtime.services import notifications_mark_all_read, notify
from realtime.unread import unread_counts
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)
KEY = "rt:unread:notifications:{}"


@pytest.fixture(params=["redis", "embedded"])
def backend(request: Any, settings: Any) -> str:
    if request.param == "embedded":
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    return str(request.param)


def tell(user: Any) -> None:
    notify(users=[user], kind="notification.created", data={}, render=lambda u: ("t", ""))


def write_between_count_and_cache(monkeypatch: Any, write: Any) -> None:
    """The next rebuild of the notifications counter counts, then ``write`` commits (and
    adjusts after its commit), then the rebuild caches what it counted."""
    real = unread.COUNTERS["notifications"]

    def counting(user_id: Any) -> int:
        n = real(user_id)
        monkeypatch.setitem(unread.COUNTERS, "notifications", real)
        write()
        return n

    monkeypatch.setitem(unread.COUNTERS, "notifications", counting)


def test_a_send_between_a_rebuilds_count_and_its_caching_is_not_lost(backend, monkeypatch):
    user = make_user()
    write_between_count_and_cache(monkeypatch, lambda: tell(user))

    assert unread_counts(user_id=user.pk)["notifications"] == 0  # counted before the send
    assert cache.get(KEY.format(user.pk)) is None  # the stale count was not cached
    assert unread_counts(user_id=user.pk)["notifications"] == 1
    assert cache.get(KEY.format(user.pk)) == 1


def test_a_reset_between_a_rebuilds_count_and_its_caching_is_not_lost(backend, monkeypatch):
    user = make_user()
    tell(user)
    tell(user)
    write_between_count_and_cache(monkeypatch, lambda: notifications_mark_all_read(user=user))

    assert unread_counts(user_id=user.pk)["notifications"] == 2  # counted before the reset
    assert cache.get(KEY.format(user.pk)) is None
    assert unread_counts(user_id=user.pk)["notifications"] == 0


def test_writes_before_a_rebuild_leave_it_cached_and_adjusted(backend):
    user = make_user()
    tell(user)  # its adjustment finds no counter, and bumps the generation
    assert unread_counts(user_id=user.pk)["notifications"] == 1
    assert cache.get(KEY.format(user.pk)) == 1
    tell(user)
    assert cache.get(KEY.format(user.pk)) == 2
    assert unread_counts(user_id=user.pk)["notifications"] == 2
