"""One patient cannot take every free slot of a doctor: a quota of upcoming appointments, in
all and with one doctor, that holds under concurrency."""

from __future__ import annotations

import pytest

from bookings.errors import TooManyUpcoming
from bookings.models import Appointment
from bookings.services import appointment_book, appointment_cancel
from tests.bookings.conftest import next_slot
from tests.doctors.factories import doctor
from tests.factories import bearer, login, make_user
from tests.threads import run_together


def _book(patient, profile, hour, minute=0, days=3):
    return appointment_book(
        patient=patient,
        doctor_id=profile.id,
        start=next_slot(days=days, hour=hour, minute=minute),
        mode="in_person",
    )


@pytest.mark.django_db
def test_a_patient_books_at_most_the_quota_with_one_doctor_and_in_all(
    doctor_with_hours, settings, api
):
    settings.BOOKING_MAX_UPCOMING_PER_DOCTOR = 2
    settings.BOOKING_MAX_UPCOMING = 3
    patient = make_user()
    first = _book(patient, doctor_with_hours, 9)
    _book(patient, doctor_with_hours, 10)
    token = login(api, patient.email)["access"]
    r = api.post(
        "/api/v1/appointments",
        {
            "doctor_id": str(doctor_with_hours.id),
            "start": next_slot(hour=11).isoformat(),
            "mode": "in_person",
        },
        content_type="application/json",
        headers={**bearer(token), "Accept-Language": "ar"},
    )
    assert r.status_code == 409, r.content
    assert r.json()["error"]["code"] == "booking.too_many_upcoming"
    assert r.json()["error"]["message"].startswith("لديك")

    # Another doctor: up to the quota in all.
    from datetime import time

    from bookings.models import BookingPolicy
    from tests.bookings.conftest import weekly_hours

    other = doctor()
    weekly_hours(other, time(9), time(13))
    BookingPolicy.objects.create(doctor=other, min_notice_minutes=0, cancel_cutoff_hours=0)
    _book(patient, other, 12, days=4)
    with pytest.raises(TooManyUpcoming):
        _book(patient, other, 12, minute=30, days=4)

    # A cancelled appointment no longer counts.
    appointment_cancel(user=patient, appointment_id=first.id, reason="")
    _book(patient, other, 12, minute=30, days=4)
    # Another patient is not limited by this one.
    _book(make_user(), doctor_with_hours, 11)


@pytest.mark.django_db(transaction=True)
def test_bookings_at_once_do_not_pass_the_quota_together(doctor_with_hours, settings):
    settings.BOOKING_MAX_UPCOMING_PER_DOCTOR = 2
    patient = make_user()
    _book(patient, doctor_with_hours, 9)
    results, errors = run_together(
        4, lambda n: _book(patient, doctor_with_hours, 10 + n // 2, minute=30 * (n % 2))
    )
    assert len(results) == 1, (results, errors)
    assert errors and all(isinstance(e, TooManyUpcoming) for e in errors), errors
    assert Appointment.objects.filter(patient=patient).count() == 2


@pytest.mark.django_db
def test_moving_an_ended_unmarked_appointment_ahead_counts_against_the_quota(
    doctor_with_hours, settings
):
    """A move keeps the count, but one that ended unmarked was not counted: a doctor moving
    it ahead would add one past the quota."""
    from datetime import timedelta

    from django.utils import timezone

    from bookings.services import appointment_reschedule

    settings.BOOKING_MAX_UPCOMING_PER_DOCTOR = 1
    patient = make_user()
    start = timezone.now() - timedelta(days=1)
    ended = Appointment.objects.create(
        doctor=doctor_with_hours,
        patient=patient,
        mode="in_person",
        clinic=doctor_with_hours.clinics.get(),
        status="confirmed",
        start=start,
        end=start + timedelta(minutes=30),
    )
    upcoming = _book(patient, doctor_with_hours, 9)

    with pytest.raises(TooManyUpcoming) as refused:
        appointment_reschedule(
            user=doctor_with_hours.user, appointment_id=ended.pk, start=next_slot(hour=10)
        )
    assert str(refused.value.detail).startswith("The patient has as many")  # told the doctor
    assert Appointment.objects.get(pk=ended.pk).status == "confirmed"
    # An upcoming one moves freely: the count stays as it is.
    moved = appointment_reschedule(
        user=doctor_with_hours.user, appointment_id=upcoming.pk, start=next_slot(hour=11)
    )
    assert moved.status == "confirmed"
