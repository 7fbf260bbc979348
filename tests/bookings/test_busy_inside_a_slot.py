"""Busy time that begins partway through a slot takes that slot, wherever the window asked
ends: a window bounds where slots start, not which busy time they meet. Read only up to the
window's end, time off starting inside the last slot was never seen, and the slot was
listed, booked and moved into (time off has no constraint in the database to stop it)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from bookings import selectors
from bookings.errors import SlotUnavailable
from bookings.models import Appointment, AvailabilityRule, Status, TimeOff
from bookings.services import appointment_book, appointment_reschedule
from tests.bookings.conftest import next_slot
from tests.bookings.test_booking import book
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def on(day, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def test_booking_a_slot_that_time_off_starts_inside_is_422(api, doctor_with_hours):
    start = next_slot(days=3, hour=10)
    TimeOff.objects.create(
        doctor=doctor_with_hours,
        start=start + timedelta(minutes=15),
        end=start + timedelta(hours=1),
    )
    r = book(api, make_user(), doctor_with_hours, start)
    assert r.status_code == 422, r.json()
    assert r.json()["error"]["code"] == "booking.slot_unavailable"
    assert not Appointment.objects.exists()


def test_a_move_into_time_off_starting_inside_the_slot_is_refused(api, doctor_with_hours):
    booked = appointment_book(
        patient=make_user(),
        doctor_id=doctor_with_hours.id,
        start=next_slot(days=3, hour=9),
        mode="in_person",
    )
    target = next_slot(days=4, hour=11)
    TimeOff.objects.create(
        doctor=doctor_with_hours,
        start=target + timedelta(minutes=10),
        end=target + timedelta(hours=2),
    )
    with pytest.raises(SlotUnavailable):
        appointment_reschedule(user=doctor_with_hours.user, appointment_id=booked.id, start=target)
    booked.refresh_from_db()
    assert booked.status == Status.CONFIRMED
    assert Appointment.objects.count() == 1


@pytest.mark.parametrize("buffer", [0, 30])
@pytest.mark.parametrize("busy", ["time_off", "appointment"])
def test_a_viewer_whose_day_ends_mid_slot_is_not_offered_a_slot_busy_after_midnight(
    api, doctor_with_hours, busy, buffer
):
    """Australia/Eucla is UTC+08:45: the viewer's day D ends at 15:15 UTC, inside the video
    slot 15:00-15:30 UTC (slots every 30 minutes, or every hour with a 30-minute buffer). Busy
    time from 15:20 UTC, after the viewer's midnight, takes that slot: the list leaves it out,
    as a booking of it finds."""
    AvailabilityRule.objects.filter(doctor=doctor_with_hours, mode="video").update(
        buffer_minutes=buffer
    )
    day = next_slot(days=3).date()
    if busy == "time_off":
        TimeOff.objects.create(doctor=doctor_with_hours, start=on(day, 15, 20), end=on(day, 16))
    else:  # a visit booked on other hours since changed: not on this grid
        Appointment.objects.create(
            doctor=doctor_with_hours, patient=make_user(), mode="video",
            status=Status.CONFIRMED, start=on(day, 15, 20), end=on(day, 15, 50),
        )  # fmt: skip
    url = f"/api/v1/doctors/{doctor_with_hours.id}/slots?from={day}&to={day}&tz=Australia/Eucla"
    r = api.get(url)
    assert r.status_code == 200, r.json()
    video = [
        datetime.fromisoformat(s["start_utc"]) for s in r.json()["items"] if s["mode"] == "video"
    ]
    assert on(day, 15) not in video
    assert on(day, 14) in video  # the slots before are free
    expected = 422 if busy == "time_off" else 409  # never offered, or taken
    assert book(api, make_user(), doctor_with_hours, on(day, 15), mode="video").status_code == (
        expected
    )


def test_busy_time_starting_as_the_last_slot_ends_leaves_it_listed(api, doctor_with_hours):
    day = next_slot(days=3).date()
    TimeOff.objects.create(doctor=doctor_with_hours, start=on(day, 15, 30), end=on(day, 16))
    url = f"/api/v1/doctors/{doctor_with_hours.id}/slots?from={day}&to={day}&tz=Australia/Eucla"
    listed = [datetime.fromisoformat(s["start_utc"]) for s in api.get(url).json()["items"]]
    assert on(day, 15) in listed
    assert book(api, make_user(), doctor_with_hours, on(day, 15), mode="video").status_code == 201


def test_next_available_skips_a_slot_that_busy_time_starts_inside(doctor_with_hours):
    """The directory's "next available" over the coming 14 days: the only slot left starts
    before the fortnight ends (15:10 UTC) and time off starts inside it (15:20 UTC)."""
    day = next_slot(days=20).date()
    now = on(day, 15, 10) - timedelta(days=14)
    TimeOff.objects.create(doctor=doctor_with_hours, start=now, end=on(day, 15))
    TimeOff.objects.create(doctor=doctor_with_hours, start=on(day, 15, 20), end=on(day, 16))
    assert selectors.first_free_slots([doctor_with_hours.id], None, now) == {}
    # Without the time off inside it, that slot is the next available one.
    TimeOff.objects.filter(start=on(day, 15, 20)).delete()
    assert selectors.first_free_slots([doctor_with_hours.id], None, now) == {
        doctor_with_hours.id: on(day, 15)
    }


def test_next_available_on_a_date_skips_a_slot_that_busy_time_starts_inside(doctor_with_hours):
    """With a date, the day is the doctor's home zone's (their clinic's): in Australia/Eucla,
    day D ends at 15:15 UTC, inside the video slot 15:00-15:30 UTC (hours kept in the
    profile's zone, UTC)."""
    doctor_with_hours.clinics.update(time_zone="Australia/Eucla")
    day = next_slot(days=3).date()
    TimeOff.objects.create(doctor=doctor_with_hours, start=on(day, 0) - timedelta(days=1),
                           end=on(day, 15))  # fmt: skip
    TimeOff.objects.create(doctor=doctor_with_hours, start=on(day, 15, 20), end=on(day, 16))
    now = datetime.now(UTC)
    assert selectors.first_free_slots([doctor_with_hours.id], day, now) == {}
    TimeOff.objects.filter(start=on(day, 15, 20)).delete()
    assert selectors.first_free_slots([doctor_with_hours.id], day, now) == {
        doctor_with_hours.id: on(day, 15)
    }
