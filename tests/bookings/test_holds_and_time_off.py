"""A hold never outlives its appointment's start, and time off takes the slots its buffer
covers in every slot list, whatever the window: what is listed can be booked."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from bookings import selectors
from bookings.errors import HoldExpired
from bookings.models import Appointment, AvailabilityRule, BookingPolicy, Status, TimeOff
from bookings.services import appointment_book, appointment_paid
from tests.bookings.conftest import next_slot
from tests.bookings.test_booking import book
from tests.bookings.test_booking_events import video_slot
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_a_hold_ends_at_the_start_and_no_payment_is_taken_once_the_visit_began(
    doctor_with_hours,
):
    BookingPolicy.objects.filter(doctor=doctor_with_hours).update(
        payment_required=True, requires_approval=False, hold_minutes=15
    )
    start = video_slot(doctor_with_hours)
    held = appointment_book(
        patient=make_user(),
        doctor_id=doctor_with_hours.id,
        start=start,
        mode="video",
        now=start - timedelta(minutes=5),  # 15 minutes of hold would run 10 past the start
    )
    assert held.status == Status.HELD and held.hold_expires_at == start
    # A hold kept past the start (made before holds were capped): no payment once it began.
    Appointment.objects.filter(id=held.id).update(hold_expires_at=start + timedelta(minutes=10))
    for now in (start, start + timedelta(minutes=1)):
        with pytest.raises(HoldExpired):
            appointment_paid(appointment_id=held.id, now=now)
    held.refresh_from_db()
    assert held.status == Status.HELD and held.paid_at is None
    paid = appointment_paid(appointment_id=held.id, now=start - timedelta(seconds=1))
    assert paid.status == Status.CONFIRMED


def test_time_off_just_before_the_window_takes_the_slots_its_buffer_covers(api, doctor_with_hours):
    """Video hours 14:00-17:00 UTC with a 30-minute buffer (slots at 14:00, 15:00, 16:00)
    and time off 14:35-14:55 UTC on day D: the 15:00 slot is not free (the buffer after the
    time off runs to 15:25). A Tokyo viewer's day D+1 starts at 15:00 UTC on D: the list
    must not offer it either, and the slot it offers first is booked."""
    AvailabilityRule.objects.filter(doctor=doctor_with_hours, mode="video").update(
        buffer_minutes=30
    )
    day = next_slot(days=3).date()  # D
    at = lambda h, m=0: datetime.combine(day, time(h, m), tzinfo=UTC)  # noqa: E731
    TimeOff.objects.create(doctor=doctor_with_hours, start=at(14, 35), end=at(14, 55))
    url = f"/api/v1/doctors/{doctor_with_hours.id}/slots"
    tokyo = api.get(
        f"{url}?from={day + timedelta(days=1)}&to={day + timedelta(days=1)}&tz=Asia/Tokyo"
    )
    utc = api.get(f"{url}?from={day}&to={day}&tz=UTC")

    def video(r):
        assert r.status_code == 200, r.content
        found = [datetime.fromisoformat(s["start_utc"]) for s in r.json()["items"]]
        modes = [s["mode"] for s in r.json()["items"]]
        return [s for s, mode in zip(found, modes, strict=True) if mode == "video"]

    on_d = [s for s in video(tokyo) if s.date() == day]
    assert on_d == [at(16)]
    assert on_d == [s for s in video(utc) if s >= at(15)]  # the same, whatever the viewer's zone
    # The directory's first free slot, from 15:00 on D, reads time off the same way.
    found = selectors.first_free_slots([doctor_with_hours.id], None, at(15), mode="video")
    assert found == {doctor_with_hours.id: at(16)}
    r = book(api, make_user(), doctor_with_hours, on_d[0], mode="video")
    assert r.status_code == 201, r.json()
