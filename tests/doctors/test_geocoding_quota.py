"""Google bills each geocoding request: searches ``near=`` a place (no sign-in needed) and clinic
addresses are counted against a quota (``ACCOUNT_RATE_LIMITS["geocoding"]``), per signed-in
user, else per client address; over it, 429 ``request.rate_limited`` in the request's language.
An answer already cached costs nothing and counts nothing. Against the real ``googlemaps`` SDK
and a local stub of Google's API."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from accounts.models import Role
from core import ratelimit
from tests.doctors.test_geocoding import FakeGoogle, google_serving
from tests.factories import bearer, login, make_user, post

pytestmark = pytest.mark.django_db

LIMIT = 3


@pytest.fixture
def google(settings: Any) -> Iterator[FakeGoogle]:
    with google_serving(settings) as fake:
        settings.ACCOUNT_RATE_LIMITS = {
            **settings.ACCOUNT_RATE_LIMITS,
            "geocoding": f"{LIMIT}/m/key,100/h/key",
        }
        yield fake


def _near(client: Client, place: str, **headers: str) -> Any:
    return client.get("/api/v1/doctors", {"near": place}, headers=headers)


def test_the_default_quota_stops_a_run_of_new_places_from_one_address(api, settings):
    """60 searches near 60 new places: Google is asked as often as the default quota allows,
    not 60 times."""
    with google_serving(settings) as fake:
        statuses = [_near(api, f"{n} Tahrir Square, Cairo").status_code for n in range(60)]
    allowed = int(settings.ACCOUNT_RATE_LIMITS["geocoding"].split("/")[0])
    assert 0 < allowed < 60
    assert statuses == [200] * allowed + [429] * (60 - allowed)
    assert len(fake.seen) == allowed


@pytest.mark.parametrize("language", ["en", "ar"])
def test_over_the_quota_a_new_place_is_429_in_the_requests_language(api, google, language):
    for n in range(LIMIT):
        assert _near(api, f"{n} Nile Street, Cairo").status_code == 200

    r = _near(api, "99 Nile Street, Cairo", **{"Accept-Language": language})

    assert r.status_code == 429
    assert r.json()["error"]["code"] == "request.rate_limited"
    assert int(r["Retry-After"]) > 0
    arabic = any("\u0600" <= ch <= "\u06ff" for ch in r.json()["error"]["message"])
    assert arabic is (language == "ar")
    assert len(google.seen) == LIMIT


def test_a_cached_place_costs_nothing_and_counts_nothing(api, google):
    for _ in range(2 * LIMIT):
        assert _near(api, "Tahrir Square, Cairo").status_code == 200
    assert len(google.seen) == 1
    for n in range(LIMIT - 1):
        assert _near(api, f"{n} Nile Street, Cairo").status_code == 200
    assert _near(api, "99 Nile Street, Cairo").status_code == 429
    assert _near(api, "tahrir square, cairo").status_code == 200  # cached: still answered
    assert len(google.seen) == LIMIT


def test_each_client_address_has_its_own_quota(google):
    one, other = Client(REMOTE_ADDR="203.0.113.1"), Client(REMOTE_ADDR="203.0.113.2")
    for n in range(LIMIT):
        assert _near(one, f"{n} Nile Street, Cairo").status_code == 200
    assert _near(one, "99 Nile Street, Cairo").status_code == 429
    assert _near(other, "99 Nile Street, Cairo").status_code == 200


def test_a_signed_in_searcher_is_counted_as_themselves(api, google):
    first, second = make_user(), make_user()
    first_token = bearer(login(api, first.email)["access"])
    second_token = bearer(login(api, second.email)["access"])
    for n in range(LIMIT):
        assert _near(api, f"{n} Nile Street, Cairo", **first_token).status_code == 200
    assert _near(api, "99 Nile Street, Cairo", **first_token).status_code == 429
    # the same address: another user, and the anonymous quota, are untouched
    assert _near(api, "98 Nile Street, Cairo", **second_token).status_code == 200
    assert _near(api, "97 Nile Street, Cairo").status_code == 200


def test_a_doctors_clinic_addresses_are_counted_against_the_doctor(api, google):
    doctor = make_user(role=Role.DOCTOR)
    headers = bearer(login(api, doctor.email)["access"])
    for n in range(LIMIT):
        r = post(
            api, "/api/v1/doctor/clinics", {"name": f"C{n}", "address": f"{n} Nile St"}, **headers
        )
        assert r.status_code == 201, r.json()

    r = post(api, "/api/v1/doctor/clinics", {"name": "C", "address": "99 Nile St"}, **headers)

    assert r.status_code == 429
    assert r.json()["error"]["code"] == "request.rate_limited"
    assert len(google.seen) == LIMIT


def test_without_a_quota_store_google_is_not_asked(api, google, monkeypatch):
    """Redis away (the geocoding cache with it): the gazetteer answers rather than every
    search being billed."""

    def away(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Redis is away")

    monkeypatch.setattr(ratelimit, "_hit", away)
    r = _near(api, "Tahrir Square, Cairo")
    assert r.status_code == 200
    assert google.seen == []
