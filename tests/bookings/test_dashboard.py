"""The dashboard counts what happened to visits, and shows only appointments that hold."""

from datetime import UTC, datetime, timedelta

import pytest

from bookings import services
from bookings.models import Appointment
from bookings.selectors import dashboard
from tests.bookings.conftest import next_slot
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_a_move_or_an_unpaid_hold_is_not_counted_as_a_cancellation(doctor_with_hours):
    patient = make_user()
    start = next_slot(days=3, hour=10)
    a = services.appointment_book(
        patient=patient, doctor_id=doctor_with_hours.id, start=start, mode="in_person"
    )
    services.appointment_reschedule(
        user=patient, appointment_id=a.id, start=start + timedelta(hours=1)
    )
    Appointment.objects.create(
        doctor=doctor_with_hours,
        patient=make_user(),
        mode="video",
        status="cancelled",
        start=start + timedelta(hours=5),
        end=start + timedelta(hours=5, minutes=30),
        hold_expires_at=start - timedelta(days=1),
    )  # fmt: skip  (a hold that ran out)
    called_off = services.appointment_book(
        patient=make_user(), doctor_id=doctor_with_hours.id, start=start + timedelta(hours=2),
        mode="in_person",
    )  # fmt: skip
    services.appointment_cancel(user=doctor_with_hours.user, appointment_id=called_off.id)
    week = dashboard(viewer=doctor_with_hours.user, now=start - timedelta(hours=1))["week"]
    assert week == {"confirmed": 1, "completed": 0, "no_show": 0, "cancelled": 1}


def test_a_hold_past_its_expiry_is_on_no_dashboard(doctor_with_hours):
    patient = make_user()
    now = datetime.now(UTC)
    start = now + timedelta(hours=2)
    held = Appointment.objects.create(
        doctor=doctor_with_hours, patient=patient, mode="video", status="held",
        start=start, end=start + timedelta(minutes=30), hold_expires_at=now - timedelta(minutes=5),
    )  # fmt: skip
    for viewer in (patient, doctor_with_hours.user):
        board = dashboard(viewer=viewer, now=now)
        assert held.id not in [a.id for a in board["next"]]
        assert held.id not in [a.id for a in board.get("today", [])]
    Appointment.objects.filter(id=held.id).update(hold_expires_at=now + timedelta(minutes=5))
    assert [a.id for a in dashboard(viewer=patient, now=now)["next"]] == [held.id]
