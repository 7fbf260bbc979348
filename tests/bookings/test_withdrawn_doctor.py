"""A doctor whose verification was withdrawn (set back to pending, or rejected) no longer
accepts requests, completes appointments, marks no-shows or replies to reviews: 403
``booking.doctor_not_verified``, as for publishing hours. Rejecting a request and cancelling
stay open to them: those free the patient."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from bookings.models import Appointment, BookingPolicy, Status, StatusChange
from bookings.reviews import review_create
from bookings.services import appointment_book
from doctors.models import DoctorProfile, Verification
from tests.bookings.conftest import completed, next_slot
from tests.factories import bearer, login, make_user, post

pytestmark = pytest.mark.django_db

NOT_VERIFIED = "booking.doctor_not_verified"
MESSAGE_EN = (
    "Your profile must be verified before you can accept or conclude appointments or reply "
    "to reviews."
)
MESSAGE_AR = "يجب توثيق ملفك قبل أن تتمكن من قبول المواعيد أو إنهائها أو الرد على التقييمات."


def withdraw(profile: DoctorProfile, to: str) -> None:
    """What an admin's change of the verification saves (a rejection also cancels the
    doctor's upcoming appointments: ``bookings.receivers``)."""
    profile.verification = to
    profile.save(update_fields=["verification"])


def headers_of(api: Client, user: User) -> dict[str, str]:
    return bearer(login(api, user.email)["access"])


def requested(profile: DoctorProfile, patient: User, hour: int = 10) -> Appointment:
    BookingPolicy.objects.filter(doctor=profile).update(requires_approval=True)
    a = appointment_book(
        patient=patient, doctor_id=profile.id, start=next_slot(hour=hour), mode="in_person"
    )
    assert a.status == Status.PENDING
    return a


def ended_unmarked(profile: DoctorProfile, patient: User) -> Appointment:
    """A confirmed appointment that took place (ended half an hour ago), not yet marked."""
    start = timezone.now() - timedelta(hours=1)
    return Appointment.objects.create(
        doctor=profile,
        patient=patient,
        mode="video",
        status=Status.CONFIRMED,
        start=start,
        end=start + timedelta(minutes=30),
    )


def assert_not_verified(r) -> None:  # type: ignore[no-untyped-def]
    assert r.status_code == 403, r.json()
    assert r.json()["error"]["code"] == NOT_VERIFIED


def test_a_doctor_set_back_to_pending_cannot_accept_a_request(api, doctor_with_hours):
    request = requested(doctor_with_hours, make_user())
    withdraw(doctor_with_hours, Verification.PENDING)
    headers = headers_of(api, doctor_with_hours.user)
    r = post(api, f"/api/v1/appointments/{request.id}/accept", **headers)
    assert_not_verified(r)
    assert r.json()["error"]["message"] == MESSAGE_EN
    r = post(
        api, f"/api/v1/appointments/{request.id}/accept", **headers, **{"Accept-Language": "ar"}
    )
    assert_not_verified(r)
    assert r.json()["error"]["message"] == MESSAGE_AR
    request.refresh_from_db()
    assert request.status == Status.PENDING
    assert StatusChange.objects.filter(appointment=request).count() == 1  # the booking's

    withdraw(doctor_with_hours, Verification.VERIFIED)  # verified again: accepting works
    r = post(api, f"/api/v1/appointments/{request.id}/accept", **headers)
    assert r.status_code == 200 and r.json()["status"] == "confirmed"


@pytest.mark.parametrize("to", [Verification.PENDING, Verification.REJECTED])
@pytest.mark.parametrize("action", ["complete", "no-show"])
def test_a_withdrawn_doctor_cannot_mark_an_appointment(api, doctor_with_hours, to, action):
    a = ended_unmarked(doctor_with_hours, make_user())
    withdraw(doctor_with_hours, to)
    headers = headers_of(api, doctor_with_hours.user)
    r = post(api, f"/api/v1/appointments/{a.id}/{action}", **headers, **{"Accept-Language": "ar"})
    assert_not_verified(r)
    assert r.json()["error"]["message"] == MESSAGE_AR
    a.refresh_from_db()
    assert a.status == Status.CONFIRMED
    assert not StatusChange.objects.filter(appointment=a).exists()


@pytest.mark.parametrize("to", [Verification.PENDING, Verification.REJECTED])
def test_a_withdrawn_doctor_cannot_reply_to_a_review(api, doctor_with_hours, to):
    patient = make_user()
    review = review_create(
        patient=patient, appointment_id=completed(doctor_with_hours, patient).id, rating=2
    )
    withdraw(doctor_with_hours, to)
    headers = headers_of(api, doctor_with_hours.user)
    r = post(api, f"/api/v1/reviews/{review.id}/reply", {"text": "Sorry to hear"}, **headers)
    assert_not_verified(r)
    assert r.json()["error"]["message"] == MESSAGE_EN
    review.refresh_from_db()
    assert (review.reply, review.replied_at) == ("", None)


def test_a_doctor_set_back_to_pending_may_still_reject_and_cancel(api, doctor_with_hours):
    patient = make_user()
    request = requested(doctor_with_hours, patient)
    BookingPolicy.objects.filter(doctor=doctor_with_hours).update(requires_approval=False)
    booked = appointment_book(
        patient=patient, doctor_id=doctor_with_hours.id, start=next_slot(hour=12), mode="in_person"
    )
    assert booked.status == Status.CONFIRMED
    withdraw(doctor_with_hours, Verification.PENDING)
    headers = headers_of(api, doctor_with_hours.user)
    r = post(api, f"/api/v1/appointments/{request.id}/reject", {"reason": "away"}, **headers)
    assert r.status_code == 200 and r.json()["status"] == "rejected", r.json()
    r = post(api, f"/api/v1/appointments/{booked.id}/cancel", {"reason": "away"}, **headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.json()
