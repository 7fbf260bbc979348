"""Hours that could never offer a slot are refused (seconds in a time of day, one-off hours
on a day gone by), and the slot lists still answer while Redis, which only caches their
schedules, is away."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.test import Client

from bookings.models import ExtraHours
from tests.factories import bearer, login
from tests.platform.test_redis_down import redis_away

pytestmark = pytest.mark.django_db
EXTRA = "/api/v1/availability/extra-hours"


def _as(doctor) -> dict[str, str]:
    return bearer(login(Client(), doctor.user.email)["access"])


def _extra(api, headers, **body):
    body = {"mode": "video", "start": "20:00", "end": "21:00", **body}
    return api.post(EXTRA, body, content_type="application/json", headers=headers)


@pytest.mark.parametrize("start", ["20:00:30", "20:00:01"])
def test_a_time_of_day_with_seconds_is_refused(api, doctor_with_hours, start):
    headers = {**_as(doctor_with_hours), "Accept-Language": "ar"}
    day = date.today() + timedelta(days=3)
    r = _extra(api, headers, date=str(day), start=start, end="20:30")
    assert r.status_code == 422, r.content
    assert "start" in str(r.json()["error"]["fields"])
    assert not ExtraHours.objects.exists()
    # whole minutes, with or without their seconds, are taken
    assert _extra(api, headers, date=str(day), start="20:00:00").status_code == 201


def test_one_off_hours_on_a_day_gone_by_are_refused(api, doctor_with_hours):
    headers = {**_as(doctor_with_hours), "Accept-Language": "ar"}
    for day in ("2001-01-01", str(date.today() - timedelta(days=2))):
        r = _extra(api, headers, date=day)
        assert r.status_code == 422, r.content
        message = r.json()["error"]["fields"]["date"]
        assert any("\u0600" <= ch <= "\u06ff" for ch in message), message
    assert not ExtraHours.objects.exists()
    later = str(date.today() + timedelta(days=2))
    r = _extra(api, headers, date=later)
    assert r.status_code == 201, r.content
    # nor moved back to one
    r = api.patch(
        f"{EXTRA}/{r.json()['id']}",
        {"date": "2001-01-01"},
        content_type="application/json",
        headers=headers,
    )
    assert r.status_code == 422, r.content
    assert str(ExtraHours.objects.get().date) == later


def test_slots_are_listed_while_redis_is_away(api, settings, doctor_with_hours):
    day = date.today() + timedelta(days=3)
    url = f"/api/v1/doctors/{doctor_with_hours.id}/slots?from={day}&to={day}"
    listed = api.get(url)
    assert listed.status_code == 200 and listed.json()["items"]
    redis_away(settings)
    r = api.get(url)
    assert r.status_code == 200, r.content
    assert r.json()["items"] == listed.json()["items"]  # read from the database
    r = api.get("/api/v1/doctors", {"sort": "next_available"})
    assert r.status_code == 200, r.content
    [card] = r.json()["items"]
    assert card["next_available"] is not None
