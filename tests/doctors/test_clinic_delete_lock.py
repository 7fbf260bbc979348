"""A doctor removes a clinic while a patient is booking there. The booking holds the doctor's
profile for share, then needs the clinic for its appointment's key; the removal takes the
profile before the clinic (not both in one statement): whoever comes second waits, nobody
deadlocks, and the loser gets its documented answer."""

from __future__ import annotations

from datetime import time

import pytest
from django.test import Client

from bookings import services
from bookings.errors import SlotUnavailable
from bookings.models import Appointment, BookingPolicy
from doctors.models import Clinic
from tests.bookings.conftest import next_slot, weekly_hours
from tests.bookings.test_lock_order import race
from tests.doctors.factories import doctor
from tests.factories import bearer, login, make_user


@pytest.mark.django_db(transaction=True)
def test_removing_a_clinic_beside_a_booking_there_does_not_deadlock(monkeypatch):
    """The booking has read the doctor as bookable (their profile locked for share) and is
    paused before its insert; the doctor removes the clinic. Locking the doctor's profile
    in the statement that locked the clinic, the removal waited for the booking, which then
    waited for the clinic: PostgreSQL ended the removal (40P01). Now it waits, then finds the
    new appointment and refuses."""
    d, patient = doctor(), make_user()
    weekly_hours(d, time(9), time(13))
    BookingPolicy.objects.create(doctor=d, min_notice_minutes=0)
    clinic = d.clinics.get()
    token = login(Client(), d.user.email)["access"]

    outcome = race(  # the booking paused holding the doctor's profile for share
        monkeypatch,
        lambda: services.appointment_book(
            patient=patient,
            doctor_id=d.id,
            start=next_slot(),
            mode="in_person",
            clinic_id=clinic.id,
        ),
        lambda: Client(raise_request_exception=False).delete(
            f"/api/v1/doctor/clinics/{clinic.id}", headers=bearer(token)
        ),
        at=(services, "_check_upcoming_quota"),
    )
    assert outcome.second_waited  # for the booking, which holds the doctor's profile
    assert isinstance(outcome.first, Appointment), outcome.first
    r = outcome.second
    assert r.status_code == 409, (r.status_code, r.content[:300])
    assert r.json()["error"]["code"] == "directory.clinic_in_use"
    assert Clinic.objects.filter(id=clinic.id).exists()


@pytest.mark.django_db(transaction=True)
def test_a_booking_beside_a_clinic_being_removed_finds_no_slot(monkeypatch):
    """The other order: the removal has deleted the clinic and not committed yet; a booking
    at it waits for the doctor's profile, then finds the slot no longer offered (not a
    foreign key error of its appointment: a 500)."""
    from doctors import services as doctor_services

    d, patient = doctor(), make_user()
    weekly_hours(d, time(9), time(13))
    BookingPolicy.objects.create(doctor=d, min_notice_minutes=0)
    clinic = d.clinics.get()
    token = login(Client(), d.user.email)["access"]

    outcome = race(  # the removal paused after its delete, before its commit
        monkeypatch,
        lambda: Client(raise_request_exception=False).delete(
            f"/api/v1/doctor/clinics/{clinic.id}", headers=bearer(token)
        ),
        lambda: services.appointment_book(
            patient=patient,
            doctor_id=d.id,
            start=next_slot(),
            mode="in_person",
            clinic_id=clinic.id,
        ),
        at=(doctor_services, "directory_changed"),
    )
    assert outcome.second_waited
    assert outcome.first.status_code == 204, (outcome.first.status_code, outcome.second)
    assert isinstance(outcome.second, SlotUnavailable), outcome.second
    assert not Clinic.objects.filter(id=clinic.id).exists()
    assert not Appointment.objects.filter(patient=patient).exists()
