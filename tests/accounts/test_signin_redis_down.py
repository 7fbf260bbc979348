"""Signing in while Redis is away: 503 with ``Retry-After`` in our envelope, as the API
answers it, not an HTML 500 (allauth's limiter counts in the cache; a sign-in saves the user
and a session, whose cached copies must be dropped)."""

from __future__ import annotations

import pytest
from django.contrib.sessions.models import Session

from core.sessions import SessionStore
from tests.factories import AUTH, PASSWORD, make_user, post
from tests.platform.test_redis_down import redis_away

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("rate_limits", [True, False], ids=["limited", "unlimited"])
def test_signing_in_while_redis_is_away_is_503_try_again(api, settings, rate_limits):
    user = make_user()
    redis_away(settings)
    if not rate_limits:
        settings.ACCOUNT_RATE_LIMITS = False
    r = post(api, f"{AUTH}/auth/login", {"email": user.email, "password": PASSWORD})
    assert r.status_code == 503, r.content
    assert r["Content-Type"].startswith("application/json")
    assert r.json()["error"]["code"] == "server.unavailable"
    assert r["Retry-After"] == "5"


def test_a_new_session_is_created_without_redis():
    """A brand-new random key has no cached copy to drop: creating it needs no Redis."""
    from django.conf import settings as django_settings
    from django.test import override_settings

    dead = {**django_settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}
    with override_settings(CACHES={"default": dead}):
        store = SessionStore()
        store["n"] = 1
        store.create()
        assert Session.objects.filter(session_key=store.session_key).exists()
        assert SessionStore(store.session_key).load() == {"n": 1}  # read from the database


def test_a_redis_password_refused_is_still_a_500(rf):
    """Our configuration's fault, not Redis's absence."""
    from redis.exceptions import AuthenticationError

    from accounts.middleware import AllauthEdgeMiddleware

    request = rf.post(f"{AUTH}/auth/login")
    middleware = AllauthEdgeMiddleware(lambda r: None)
    assert middleware.process_exception(request, AuthenticationError("invalid password")) is None
    from redis.exceptions import ConnectionError as RedisConnectionError

    answer = middleware.process_exception(request, RedisConnectionError("refused"))
    assert answer is not None and answer.status_code == 503
