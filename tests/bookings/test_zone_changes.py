"""Hours keep their wall-clock times when their zone changes (the profile's time zone, for
hours without a clinic; a clinic's, when it moves). A change that would make some of them
meet the doctor's other hours is refused, as new overlapping hours are: the slot list keeps
one source's slots where two meet, so the other mode's were silently never offered."""

from __future__ import annotations

import pytest

from bookings.models import BookingPolicy
from tests.doctors.factories import doctor
from tests.factories import bearer, login, post

pytestmark = pytest.mark.django_db


def _patch(api, path, data, token, **headers):
    return api.patch(
        path, data, content_type="application/json", headers={**bearer(token), **headers}
    )


def _doctor_with_two_mondays(api):
    """A doctor in London (hours without a clinic) with a clinic in Cairo: Monday 08:00-09:00
    in person in Cairo (06:00-07:00Z in winter) and Monday 08:00-09:00 video in London
    (08:00-09:00Z): apart, both offered."""
    profile = doctor(offers_video=True, time_zone="Europe/London")
    clinic = profile.clinics.get()
    BookingPolicy.objects.create(doctor=profile, min_notice_minutes=0, window_days=365)
    token = login(api, profile.user.email)["access"]
    for body in (
        {"weekday": 0, "start": "08:00", "end": "09:00", "mode": "in_person"}
        | {"clinic_id": str(clinic.id)},
        {"weekday": 0, "start": "08:00", "end": "09:00", "mode": "video"},
    ):
        assert post(api, "/api/v1/availability/rules", body, **bearer(token)).status_code == 201
    return profile, clinic, token


def _modes(api, profile) -> set[str]:
    r = api.get(f"/api/v1/doctors/{profile.id}/slots?from=2027-01-04&to=2027-01-04")
    return {s["mode"] for s in r.json()["items"]}


def test_a_profile_zone_that_would_make_hours_meet_is_refused(api):
    profile, _clinic, token = _doctor_with_two_mondays(api)
    assert _modes(api, profile) == {"in_person", "video"}
    r = _patch(
        api,
        "/api/v1/doctor/profile",
        {"time_zone": "Africa/Cairo"},
        token,
        **{"Accept-Language": "ar"},
    )
    assert r.status_code == 422, r.json()
    assert r.json()["error"]["code"] == "request.invalid"
    message = r.json()["error"]["fields"]["time_zone"]
    assert "08:00-09:00" in message and "In the new time zone" not in message  # in Arabic
    profile.refresh_from_db()
    assert profile.time_zone == "Europe/London"
    assert _modes(api, profile) == {"in_person", "video"}
    # A zone where they stay apart is taken.
    r = _patch(api, "/api/v1/doctor/profile", {"time_zone": "Asia/Dubai"}, token)
    assert r.status_code == 200 and r.json()["time_zone"] == "Asia/Dubai"


def test_a_clinic_moved_into_a_zone_where_its_hours_would_meet_others_is_refused(api):
    profile, clinic, token = _doctor_with_two_mondays(api)
    london = {"latitude": 51.5074, "longitude": -0.1278}
    r = _patch(api, f"/api/v1/doctor/clinics/{clinic.id}", london, token)
    assert r.status_code == 422, r.json()
    assert "08:00-09:00" in str(r.json()["error"]["fields"])
    clinic.refresh_from_db()
    assert clinic.time_zone == "Africa/Cairo"
    assert _modes(api, profile) == {"in_person", "video"}
    # Moved within its zone, it is taken.
    alexandria = {"latitude": 31.2001, "longitude": 29.9187}
    assert _patch(api, f"/api/v1/doctor/clinics/{clinic.id}", alexandria, token).status_code == 200
