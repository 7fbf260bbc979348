"""Where a clock change meets the edge of a window: the slot list, the directory and a
booking agree on which of two slots that meet across a spring-forward is offered, and hours
that never meet are not refused as overlapping because an end falls in the skipped hour."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from bookings import selectors
from bookings.models import AvailabilityRule, BookingPolicy
from doctors.models import Clinic
from tests.doctors.factories import doctor
from tests.factories import bearer, login, make_user, post

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
RULES = "/api/v1/availability/rules"


def next_spring_forward() -> date:
    """The next Sunday New York puts its clocks forward (02:00 EST = 07:00Z, midnight in
    Phoenix), a few days ahead at least."""
    soon = timezone.now().date() + timedelta(days=3)
    for year in (soon.year, soon.year + 1):
        march = date(year, 3, 8)  # the second Sunday of March is the first from the 8th
        day = march + timedelta(days=(6 - march.weekday()) % 7)
        if day >= soon:
            return day
    raise AssertionError("unreachable")


def zulu(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def new_york_doctor(**fields):
    """Sundays 00:00-06:00 in New York, 45-minute video slots: on the spring-forward Sunday
    01:30 EST (06:30-07:15Z) runs into 03:00 EDT (07:00Z), so 03:00 is not offered."""
    profile = doctor(offers_video=True, time_zone="America/New_York", **fields)
    AvailabilityRule.objects.create(
        doctor=profile, mode="video", weekday=6, start=time(0), end=time(6), slot_minutes=45
    )
    BookingPolicy.objects.create(doctor=profile, min_notice_minutes=0, window_days=365)
    return profile


def listed(api, profile, day: date, zone: str) -> list[str]:
    r = api.get(f"/api/v1/doctors/{profile.id}/slots?from={day}&to={day}&tz={zone}")
    assert r.status_code == 200, r.json()
    return [s["start_utc"] for s in r.json()["items"] if s["mode"] == "video"]


def book(api, profile, start: str):
    token = login(api, make_user().email)["access"]
    body = {"doctor_id": str(profile.id), "start": start, "mode": "video"}
    return post(api, "/api/v1/appointments", body, **bearer(token))


def test_a_list_starting_inside_a_spring_forward_offers_only_bookable_slots(api):
    profile = new_york_doctor(lat=None, lng=None)
    day = next_spring_forward()
    # Phoenix's day starts at 07:00Z, between 01:30 EST (06:30Z) and 03:00 EDT (07:00Z).
    phoenix = listed(api, profile, day, "America/Phoenix")
    iso = f"{day}T%sZ"
    assert phoenix == [iso % "07:45:00", iso % "08:30:00", iso % "09:15:00"]
    # 01:30 EST is the slot offered: on the Phoenix day before, and in New York's day.
    assert listed(api, profile, day - timedelta(days=1), "America/Phoenix")[-1] == iso % "06:30:00"
    assert iso % "06:30:00" in listed(api, profile, day, "America/New_York")
    for start in [iso % "06:30:00", *phoenix]:
        r = book(api, profile, start)
        assert r.status_code == 201, (start, r.json())
    assert book(api, profile, iso % "07:00:00").status_code == 422  # never offered


def test_the_directory_starting_inside_a_spring_forward_gives_a_bookable_first_slot(api):
    profile = new_york_doctor()  # a clinic: its zone is the doctor's home zone
    Clinic.objects.filter(doctor=profile).update(time_zone="America/Phoenix")
    day = next_spring_forward()
    first = selectors.first_free_slots([profile.id], day, timezone.now(), mode="video")
    assert first == {profile.id: zulu(day, 7, 45)}  # not 07:00Z: 01:30 EST runs into it
    r = book(api, profile, first[profile.id].isoformat())
    assert r.status_code == 201, r.json()


def rule(api, token: str, start: str, end: str):
    body = {"weekday": 6, "start": start, "end": end, "mode": "video", "slot_minutes": 15}
    return post(api, RULES, body, **bearer(token))


def test_hours_meeting_only_at_a_spring_forward_are_not_refused_as_overlapping(api):
    """Sundays 00:00-01:30 and 02:00-04:00 in London: on the last Sunday of March the first
    closes at the clock change (01:00Z, 01:30 GMT never comes) as the second opens (02:00 BST
    = 01:00Z): they meet without overlapping, as the slot engine counts them."""
    profile = doctor(offers_video=True, lat=None, lng=None, time_zone="Europe/London")
    token = login(api, profile.user.email)["access"]
    first = rule(api, token, "00:00", "01:30")
    assert first.status_code == 201, first.json()
    second = rule(api, token, "02:00", "04:00")
    assert second.status_code == 201, second.json()
    third = rule(api, token, "01:45", "02:00")  # wholly in the skipped hour that Sunday
    assert third.status_code == 201, third.json()


@pytest.mark.parametrize(
    ("start", "end"), [("01:00", "03:00"), ("01:29", "01:45"), ("00:30", "02:30")]
)
def test_hours_that_do_overlap_are_still_refused(api, start, end):
    profile = doctor(offers_video=True, lat=None, lng=None, time_zone="Europe/London")
    token = login(api, profile.user.email)["access"]
    assert rule(api, token, "00:00", "01:30").status_code == 201
    r = rule(api, token, start, end)
    assert r.status_code == 422, r.json()
    assert "overlap" in r.json()["error"]["fields"]["start"]
