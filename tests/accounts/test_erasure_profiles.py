"""What erasure wipes beyond the account: a doctor's profile texts and clinics, a patient's
public review texts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from accounts.services import account_delete
from bookings.models import Appointment, Review, TimeOff
from bookings.reviews import review_create
from doctors.models import Clinic, DoctorProfile
from tests.doctors.factories import doctor
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def test_a_doctors_erasure_wipes_their_profile_texts_and_clinics_and_delists_them(
    api, django_capture_on_commit_callbacks
):
    profile = doctor(
        designation="Consultant cardiologist",
        bio_en="Trained in Cairo.",
        bio_ar="تدرب في القاهرة.",
        verification_reason="Licence 12345 checked",
        languages=",ar,en,",
    )
    TimeOff.objects.create(
        doctor=profile,
        start=datetime.now(UTC) + timedelta(days=1),
        end=datetime.now(UTC) + timedelta(days=2),
        reason="My daughter's wedding",
    )
    clinic = profile.clinics.get()
    # A past appointment at the clinic: the clinic stays, anonymised.
    start = datetime.now(UTC) - timedelta(days=3)
    Appointment.objects.create(
        doctor=profile,
        patient=make_user(),
        clinic=clinic,
        mode="in_person",
        status="completed",
        start=start,
        end=start + timedelta(minutes=30),
    )
    assert [d["id"] for d in api.get("/api/v1/doctors").json()["items"]] == [str(profile.id)]
    assert api.get(f"/api/v1/doctors/{profile.id}").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):  # the directory cache is dropped
        account_delete(user=profile.user)

    profile = DoctorProfile.objects.get(pk=profile.pk)
    assert (
        profile.designation,
        profile.bio_en,
        profile.bio_ar,
        profile.verification_reason,
        profile.languages,
    ) == ("", "", "", "", ",")
    assert list(TimeOff.objects.filter(doctor=profile).values_list("reason", flat=True)) == [""]
    clinic = Clinic.objects.get(pk=clinic.pk)
    assert (clinic.name, clinic.address) == ("", "")
    assert api.get("/api/v1/doctors").json()["items"] == []
    assert api.get(f"/api/v1/doctors/{profile.id}").status_code == 404


def test_a_patients_erasure_blanks_their_review_texts_and_keeps_the_ratings(api):
    profile = doctor()
    other = doctor()
    patient, stranger = make_user(), make_user()
    for who, text in ((patient, "Dr. knew my family"), (stranger, "Very kind")):
        start = datetime.now(UTC) - timedelta(days=2)
        appointment = Appointment.objects.create(
            doctor=profile,
            patient=who,
            mode="video",
            status="completed",
            start=start,
            end=start + timedelta(minutes=30),
        )
        review_create(patient=who, appointment_id=appointment.id, rating=5, text=text)
    start = datetime.now(UTC) - timedelta(days=4)
    elsewhere = Appointment.objects.create(
        doctor=other,
        patient=patient,
        mode="video",
        status="completed",
        start=start,
        end=start + timedelta(minutes=30),
    )
    review_create(patient=patient, appointment_id=elsewhere.id, rating=2, text="Late again")

    account_delete(user=patient)

    page = api.get(f"/api/v1/doctors/{profile.id}/reviews").json()["items"]
    assert sorted((i["rating"], i["text"]) for i in page) == [(5, ""), (5, "Very kind")]
    assert list(Review.objects.filter(patient=patient).values_list("text", flat=True)) == [
        "",
        "",
    ]
    profile.refresh_from_db()
    assert (profile.rating, profile.rating_count) == (5.0, 2)
    assert api.get(f"/api/v1/doctors/{other.id}").json()["rating"] == 2.0
