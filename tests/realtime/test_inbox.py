"""The inbox: cursor pages, unread counters (cached in Redis, rebuilt from the database),
mark one or all read."""

from __future__ import annotations

import pytest
import redis
from django.core.cache import cache
from django.utils import translation

from core import db
from realtime.models import Notification
from realtime.services import notify
from realtime.unread import unread_counts
from tests.factories import bearer, login, make_user, post

pytestmark = pytest.mark.django_db


def make_events(user, n: int) -> list[Notification]:
    created = []
    for i in range(n):
        created += notify(
            users=[user], kind="notification.created", data={"i": i}, render=lambda u: ("t", "b")
        )
    return created


def test_event_ids_count_up_per_user_from_one():
    a, b = make_user(), make_user()
    make_events(a, 2)
    make_events(b, 1)
    notify(users=[b, a], kind="notification.created", data={}, render=lambda u: ("t", ""))
    assert list(a.notifications.order_by("id").values_list("seq", flat=True)) == [1, 2, 3]
    assert list(b.notifications.order_by("id").values_list("seq", flat=True)) == [1, 2]


def test_inbox_pages_newest_first_with_a_cursor(api, django_assert_num_queries):
    user = make_user()
    make_events(user, 5)
    make_events(make_user(), 2)  # someone else's
    auth = bearer(login(api, user.email)["access"])
    first = api.get("/api/v1/notifications?limit=3", headers=auth).json()
    assert [n["id"] for n in first["items"]] == [5, 4, 3]
    with django_assert_num_queries(2):  # the session (cached_db) and one page
        rest = api.get(f"/api/v1/notifications?limit=3&cursor={first['next']}", headers=auth)
    assert [n["id"] for n in rest.json()["items"]] == [2, 1]
    assert rest.json()["next"] is None
    assert api.get("/api/v1/notifications?cursor=forged", headers=auth).status_code == 400
    assert api.get("/api/v1/notifications").status_code == 401


def test_unread_count_mark_one_and_all(api, django_capture_on_commit_callbacks):
    user, other = make_user(), make_user()
    with django_capture_on_commit_callbacks(execute=True):
        make_events(user, 3)
        [foreign] = make_events(other, 1)
    auth = bearer(login(api, user.email)["access"])

    def unread() -> int:
        return api.get("/api/v1/notifications/unread", headers=auth).json()["counts"][
            "notifications"
        ]

    assert unread() == 3
    with django_capture_on_commit_callbacks(execute=True):
        r = post(api, "/api/v1/notifications/2/read", **auth)
    assert r.status_code == 200 and r.json()["read_at"] is not None
    assert unread() == 2
    with django_capture_on_commit_callbacks(execute=True):
        post(api, "/api/v1/notifications/2/read", **auth)  # twice: counted once
    assert unread() == 2
    assert post(api, "/api/v1/notifications/99/read", **auth).status_code == 404
    # Another user's event id 1 is not ours to mark: ours (id 1) is marked instead.
    assert foreign.seq == 1
    with django_capture_on_commit_callbacks(execute=True):
        post(api, "/api/v1/notifications/1/read", **auth)
    assert Notification.objects.get(pk=foreign.pk).read_at is None
    assert unread() == 1
    with django_capture_on_commit_callbacks(execute=True):
        r = post(api, "/api/v1/notifications/read-all", **auth)
    assert r.json() == {"updated": 1}
    assert unread() == 0
    with django_capture_on_commit_callbacks(execute=True):
        make_events(user, 1)
    assert unread() == 1
    unread_page = api.get("/api/v1/notifications?unread=true", headers=auth).json()
    assert [n["id"] for n in unread_page["items"]] == [4]


def test_unread_counts_come_back_correct_after_redis_is_flushed(
    private_redis, settings, django_capture_on_commit_callbacks
):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": private_redis.info["url"],
            "KEY_PREFIX": settings.REDIS_KEY_PREFIX,
        }
    }
    user = make_user()
    with django_capture_on_commit_callbacks(execute=True):
        make_events(user, 4)
    assert unread_counts(user_id=user.pk)["notifications"] == 4  # now cached
    with django_capture_on_commit_callbacks(execute=True):
        make_events(user, 1)  # adjusts the cached counter
    assert unread_counts(user_id=user.pk)["notifications"] == 5
    raw = redis.Redis.from_url(private_redis.info["url"])
    assert any(b"unread:notifications" in k for k in raw.keys())
    raw.flushall()
    with django_capture_on_commit_callbacks(execute=True):
        make_events(user, 2)  # nothing cached to adjust
        Notification.objects.filter(user=user, seq=1).update(read_at="2026-01-01T00:00Z")
    assert unread_counts(user_id=user.pk)["notifications"] == 6  # rebuilt from the database
    assert cache.get(f"rt:unread:notifications:{user.pk}") == 6


def test_each_recipient_is_rendered_in_their_language_and_answered_in_the_order_given(
    django_assert_num_queries,
):
    users = [make_user(language=language) for language in ("en", "ar", "en", "ar")]
    created = notify(
        users=users,
        kind="notification.created",
        data={"n": 1},
        render=lambda u: (translation.get_language(), u.email),
    )
    with django_assert_num_queries(0):  # answered complete, as stored
        answered = [(n.user.pk, n.title, n.body, n.read_at, n.event()["id"]) for n in created]
    assert answered == [(u.pk, u.language, u.email, None, 1) for u in users]
    stored = Notification.objects.filter(user__in=users).values_list("user", "title", "body")
    assert sorted(stored) == sorted((u.pk, u.language, u.email) for u in users)
    assert [n.pk for n in created] == [Notification.objects.get(user=u, seq=1).pk for u in users]


def test_notify_answers_the_rows_as_the_database_reads_them(django_assert_num_queries):
    """``notify()`` builds its answer from the statement's output (``core.db.stored``), not
    by reading the rows back: each field equals the stored row's, the recipient is there
    without a query, and the instance saves as an update of its row."""
    users = [make_user(language="ar"), make_user()]
    created = notify(
        users=users,
        kind="notification.created",
        data={"k": [1, "x"]},
        render=lambda u: (f"title {u.language}", "body"),
    )
    columns = [f.attname for f in Notification._meta.concrete_fields]
    for n, user in zip(created, users, strict=True):
        read = Notification.objects.get(pk=n.pk)
        assert {c: getattr(n, c) for c in columns} == {c: getattr(read, c) for c in columns}
        assert (n._state.adding, n._state.db) == (False, "default")
        with django_assert_num_queries(0):
            assert n.user is user
        assert n.event() == read.event()
    created[0].title = "changed"
    with django_assert_num_queries(1):
        created[0].save()  # an UPDATE of the row, not a second INSERT
    assert Notification.objects.get(pk=created[0].pk).title == "changed"
    assert Notification.objects.count() == 2
    with pytest.raises(ValueError, match="every concrete field"):
        db.stored(Notification, {"id": 1, "seq": 1})  # a partial row is refused
