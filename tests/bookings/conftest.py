from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from bookings.models import AvailabilityRule, BookingPolicy
from tests.doctors.factories import doctor


@pytest.fixture
def doctor_with_hours(db):
    """A verified doctor in Cairo, open every day 09:00-17:00 for 30-minute in-person and
    video slots, with no minimum notice."""
    profile = doctor(offers_video=True)
    clinic = profile.clinics.get()
    for weekday in range(7):
        AvailabilityRule.objects.create(
            doctor=profile,
            clinic=clinic,
            mode="in_person",
            weekday=weekday,
            start=time(9),
            end=time(13),
            slot_minutes=30,
        )
        AvailabilityRule.objects.create(
            doctor=profile,
            clinic=None,
            mode="video",
            weekday=weekday,
            start=time(14),
            end=time(17),
            slot_minutes=30,
        )
    BookingPolicy.objects.create(doctor=profile, min_notice_minutes=0, cancel_cutoff_hours=24)
    return profile


def next_slot(days: int = 3, hour: int = 10, minute: int = 0) -> datetime:
    """A Cairo wall-clock time some days ahead, as a UTC instant."""
    from zoneinfo import ZoneInfo

    day = (datetime.now(UTC) + timedelta(days=days)).astimezone(ZoneInfo("Africa/Cairo")).date()
    return datetime.combine(day, time(hour, minute), tzinfo=ZoneInfo("Africa/Cairo")).astimezone(
        UTC
    )
