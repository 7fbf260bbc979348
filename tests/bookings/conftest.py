from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from bookings.models import AvailabilityRule, BookingPolicy
from tests.doctors.factories import doctor


def weekly_hours(profile, start: time, end: time, mode: str = "in_person") -> None:
    """Every day from ``start`` to ``end``, 30-minute slots: in person at the doctor's clinic,
    other modes without a clinic (in the profile's zone)."""
    clinic = profile.clinics.get() if mode == "in_person" else None
    for weekday in range(7):
        AvailabilityRule.objects.create(
            doctor=profile,
            clinic=clinic,
            mode=mode,
            weekday=weekday,
            start=start,
            end=end,
            slot_minutes=30,
        )


@pytest.fixture
def doctor_with_hours(db):
    """A verified doctor in Cairo, open every day 09:00-17:00 for 30-minute in-person and
    video slots, with no minimum notice."""
    profile = doctor(offers_video=True)
    weekly_hours(profile, time(9), time(13))
    weekly_hours(profile, time(14), time(17), mode="video")
    BookingPolicy.objects.create(doctor=profile, min_notice_minutes=0, cancel_cutoff_hours=24)
    return profile


def completed(doctor, patient, days_ago: int = 1):
    """A completed video appointment of ``patient`` with ``doctor``, ``days_ago`` days ago:
    what a review needs."""
    from bookings.models import Appointment

    start = datetime.now(UTC) - timedelta(days=days_ago)
    return Appointment.objects.create(
        doctor=doctor,
        patient=patient,
        mode="video",
        status="completed",
        start=start,
        end=start + timedelta(minutes=30),
    )


def next_slot(days: int = 3, hour: int = 10, minute: int = 0) -> datetime:
    """A Cairo wall-clock time some days ahead, as a UTC instant."""
    from zoneinfo import ZoneInfo

    day = (datetime.now(UTC) + timedelta(days=days)).astimezone(ZoneInfo("Africa/Cairo")).date()
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo("Africa/Cairo")).astimezone(
        UTC
    )
