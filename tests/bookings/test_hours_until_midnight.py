"""Hours until midnight: ``24:00`` (or ``00:00``) as an end is the midnight that ends the day,
so an evening shift keeps its last slot and a night shift is two hours that meet at midnight
without overlapping."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bookings.models import AvailabilityRule, BookingPolicy, ExtraHours
from tests.doctors.factories import doctor
from tests.factories import bearer, login, make_user, post

pytestmark = pytest.mark.django_db
RULES, EXTRA = "/api/v1/availability/rules", "/api/v1/availability/extra-hours"
CAIRO = ZoneInfo("Africa/Cairo")


@pytest.fixture
def night_doctor(db):
    profile = doctor(offers_video=True, time_zone="Africa/Cairo")  # video hours: this zone
    BookingPolicy.objects.create(doctor=profile, min_notice_minutes=0, cancel_cutoff_hours=24)
    return profile


def headers(api, user, **more):
    return {**bearer(login(api, user.email)["access"]), **more}


def future_day(weekday: int):
    """A Cairo date at least three days ahead falling on ``weekday``."""
    day = (datetime.now(UTC) + timedelta(days=3)).astimezone(CAIRO).date()
    return day + timedelta(days=(weekday - day.weekday()) % 7)


def cairo_starts(api, profile, day) -> list[str]:
    r = api.get(f"/api/v1/doctors/{profile.id}/slots?from={day}&to={day}&tz=Africa/Cairo")
    assert r.status_code == 200, r.json()
    return [s["start"][11:16] for s in r.json()["items"]]


@pytest.mark.parametrize("end", ["24:00", "24:00:00", "00:00"])
def test_hours_until_midnight_keep_their_last_slot_and_can_be_booked(api, night_doctor, end):
    me = headers(api, night_doctor.user)
    body = {"weekday": 2, "start": "22:00", "end": end, "mode": "video", "slot_minutes": 30}
    r = post(api, RULES, body, **me)
    assert r.status_code == 201, r.json()
    assert r.json()["end"] == "00:00:00"
    assert AvailabilityRule.objects.get().end == time(0)

    wednesday = future_day(2)
    assert cairo_starts(api, night_doctor, wednesday) == ["22:00", "22:30", "23:00", "23:30"]
    last = datetime.combine(wednesday, time(23, 30), tzinfo=CAIRO)
    r = post(
        api,
        "/api/v1/appointments",
        {"doctor_id": str(night_doctor.id), "start": last.isoformat(), "mode": "video"},
        **headers(api, make_user()),
    )
    assert r.status_code == 201, r.json()
    midnight = datetime.combine(wednesday + timedelta(days=1), time(0), tzinfo=CAIRO)
    assert datetime.fromisoformat(r.json()["end"]) == midnight


def test_a_night_shift_is_two_hours_meeting_at_midnight(api, night_doctor):
    me = headers(api, night_doctor.user)
    late = {"weekday": 2, "start": "22:00", "end": "24:00", "mode": "video"}
    early = {"weekday": 3, "start": "00:00", "end": "02:00", "mode": "video"}
    assert post(api, RULES, late, **me).status_code == 201
    r = post(api, RULES, early, **me)
    assert r.status_code == 201, r.json()  # they meet at midnight, they do not overlap

    # Hours reaching past midnight do overlap, and the message says 24:00.
    wednesday = future_day(2)
    more = {"date": str(wednesday), "start": "23:30", "end": "24:00", "mode": "video"}
    r = post(api, EXTRA, more, **me, **{"Accept-Language": "en"})
    assert r.status_code == 422, r.json()
    assert "22:00-24:00" in r.json()["error"]["fields"]["start"]
    assert not ExtraHours.objects.exists()

    thursday = wednesday + timedelta(days=1)
    assert cairo_starts(api, night_doctor, wednesday)[-1] == "23:30"
    assert cairo_starts(api, night_doctor, thursday)[:1] == ["00:00"]


@pytest.mark.parametrize(
    "start, end",
    [("24:00", "24:00"), ("00:00", "00:00"), ("09:00", "24:30"), ("09:00", "25:00")],
)
def test_midnight_is_an_end_only(api, night_doctor, start, end):
    me = headers(api, night_doctor.user)
    body = {"weekday": 1, "start": start, "end": end, "mode": "video"}
    r = post(api, RULES, body, **me, **{"Accept-Language": "ar"})
    if start == "00:00":  # a whole day, 00:00 to the next midnight
        assert r.status_code == 201, r.json()
        return
    assert r.status_code == 422, r.json()
    assert set(r.json()["error"]["fields"]) & {"start", "end"}
    assert not AvailabilityRule.objects.exists()


def test_a_slot_longer_than_the_hours_to_midnight_is_refused(api, night_doctor):
    me = headers(api, night_doctor.user)
    body = {"weekday": 1, "start": "23:30", "end": "24:00", "mode": "video", "slot_minutes": 45}
    r = post(api, RULES, body, **me)
    assert r.status_code == 422, r.json()
    assert "30" in r.json()["error"]["fields"]["slot_minutes"]
    body["slot_minutes"] = 30
    assert post(api, RULES, body, **me).status_code == 201


def test_the_database_keeps_midnight_ends_and_refuses_inverted_hours(night_doctor):
    from django.db import IntegrityError, transaction

    AvailabilityRule.objects.create(
        doctor=night_doctor, mode="video", weekday=0, start=time(20), end=time(0)
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        AvailabilityRule.objects.create(
            doctor=night_doctor, mode="video", weekday=1, start=time(20), end=time(19)
        )
