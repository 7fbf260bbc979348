"""Redis away: the REST API still answers signed-in requests (sessions and the auth
snapshot fall back to the database); only what lives in Redis alone is missing."""

import pytest

from tests.factories import bearer, login, make_user

pytestmark = pytest.mark.django_db

DEAD = "redis://127.0.0.1:1/0"  # nothing listens there


def test_a_signed_in_request_is_answered_while_redis_is_away(api, settings):
    user = make_user()
    token = login(api, user.email)["access"]  # signed in while Redis was there
    settings.CACHES = {
        "default": {
            "BACKEND": "core.cache.SharedClientRedisCache",
            "LOCATION": DEAD,
            "KEY_PREFIX": settings.REDIS_KEY_PREFIX,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    r = api.get("/api/v1/me", headers=bearer(token))
    assert r.status_code == 200, r.content
    assert r.json()["email"] == user.email
    # and a token whose session is gone is still refused (nothing fails open)
    from django.contrib.sessions.models import Session

    Session.objects.all().delete()
    assert api.get("/api/v1/me", headers=bearer(token)).status_code == 401


def test_what_lives_in_redis_alone_is_503_try_again_not_a_500(api, settings):
    from tests.doctors.factories import doctor
    from tests.records.conftest import in_care_with

    user = make_user()
    in_care_with(doctor(), user)  # someone whose presence the user may see
    token = login(api, user.email)["access"]
    settings.REDIS_URL = DEAD  # presence's own client
    settings.CACHES = {
        "default": {
            "BACKEND": "core.cache.SharedClientRedisCache",
            "LOCATION": DEAD,
            "KEY_PREFIX": settings.REDIS_KEY_PREFIX,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    r = api.get("/api/v1/presence", headers=bearer(token))
    assert r.status_code == 503, r.content
    assert r.json()["error"]["code"] == "server.unavailable" and r["Retry-After"] == "5"
