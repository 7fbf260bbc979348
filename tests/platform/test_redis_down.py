"""Redis away: the REST API still answers signed-in requests (sessions and the auth
snapshot fall back to the database); only what lives in Redis alone is missing."""

import pytest

from tests.factories import bearer, login, make_user

pytestmark = pytest.mark.django_db

DEAD = "redis://127.0.0.1:1/0"  # nothing listens there


def redis_away(settings) -> None:
    """The cache on a Redis that is not there (refused at once, timeouts of a second)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "core.cache.SharedClientRedisCache",
            "LOCATION": DEAD,
            "KEY_PREFIX": settings.REDIS_KEY_PREFIX,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }


def test_a_signed_in_request_is_answered_while_redis_is_away(api, settings):
    user = make_user()
    token = login(api, user.email)["access"]  # signed in while Redis was there
    redis_away(settings)
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
    redis_away(settings)
    r = api.get("/api/v1/presence", headers=bearer(token))
    assert r.status_code == 503, r.content
    assert r.json()["error"]["code"] == "server.unavailable" and r["Retry-After"] == "5"


def test_a_session_change_that_cannot_drop_the_cached_copy_fails_and_changes_nothing(api, settings):
    """Redis back with the copy of before would bring a signed-out session back: a sign-out
    or a refresh while Redis is away fails (loudly), and the session is still readable."""
    from django.contrib.sessions.models import Session

    from core.sessions import SessionStore

    user = make_user()
    login(api, user.email)
    [row] = Session.objects.all()
    redis_away(settings)
    store = SessionStore(row.session_key)
    assert store.load()  # read from the database
    with pytest.raises(Exception, match="(?i)connect"):
        store.delete()
    with pytest.raises(Exception, match="(?i)connect"):
        store["refreshed"] = True
        store.save()
    assert Session.objects.filter(session_key=row.session_key).exists()


def test_only_unreachable_services_are_503_and_our_own_mistakes_stay_500(rf):
    from botocore.exceptions import EndpointConnectionError, NoCredentialsError
    from redis.exceptions import AuthenticationError
    from redis.exceptions import ConnectionError as RedisConnectionError

    from telemed.api import api as telemed_api

    request = rf.get("/api/v1/me")
    for exc, status in (
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), 503),
        (NoCredentialsError(), 500),
        (RedisConnectionError("refused"), 503),
        (AuthenticationError("invalid password"), 500),
    ):
        assert telemed_api.on_exception(request, exc).status_code == status, exc


@pytest.mark.parametrize("path", ["/api/v1/appointments", "/api/v1/records/uploads"])
def test_text_that_cannot_be_stored_is_refused_at_the_edge_of_every_endpoint(api, path):
    """A lone surrogate is valid JSON but not UTF-8: it reached encryption or PostgreSQL and
    answered 500 wherever an endpoint did not check it itself."""
    user = make_user()
    token = login(api, user.email)["access"]
    body = '{"doctor_id": "x", "reason": "pain \\ud800", "title": "t \\ud800"}'
    r = api.post(path, body, content_type="application/json", headers=bearer(token))
    assert r.status_code == 422, r.content
    assert set(r.json()["error"]["fields"]) <= {"reason", "title"}, r.json()
