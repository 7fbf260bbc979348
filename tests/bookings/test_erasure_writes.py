"""Writes of free text about a person that passed their token check before the person's
account was erased: none stores its text after the erasure (each holds the account's row
first, the row erasure locks), and an erased account is never reactivated."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from accounts import services as accounts_services
from accounts.errors import AccountErased
from accounts.models import User
from accounts.services import account_delete, user_set_active
from bookings.models import Review, TimeOff
from bookings.reviews import ReviewClosed, review_create, review_reply
from bookings.services import time_off_create
from doctors.models import Clinic, DoctorProfile
from doctors.services import clinic_create, clinic_update, doctor_profile_update
from tests.bookings.conftest import completed
from tests.factories import make_user


def _stale(user: User) -> User:
    """The request's user, loaded (and its token checked) before the erasure."""
    return User.objects.get(pk=user.pk)


@pytest.mark.django_db
def test_a_doctor_erased_meanwhile_writes_no_profile_clinic_or_time_off(doctor_with_hours):
    loaded = _stale(doctor_with_hours.user)
    clinic = doctor_with_hours.clinics.get()
    account_delete(user=doctor_with_hours.user)

    with pytest.raises(AccountErased):
        doctor_profile_update(user=loaded, changes={"bio_en": "Dr Omar, 12 Nile St"})
    with pytest.raises(AccountErased):
        clinic_create(user=loaded, name="Omar's home", address="12 Nile St", city="Cairo")
    with pytest.raises(AccountErased):
        clinic_update(user=loaded, clinic_id=clinic.pk, changes={"name": "Dr Omar's"})
    with pytest.raises(AccountErased):
        start = timezone.now() + timedelta(days=30)
        time_off_create(user=loaded, start=start, end=start + timedelta(days=1), reason="Omar")

    profile = DoctorProfile.objects.get(pk=doctor_with_hours.pk)
    assert profile.bio_en == ""
    assert list(Clinic.objects.filter(doctor=profile).values_list("name", flat=True)) == [""]
    assert not TimeOff.objects.filter(doctor=profile).exists()


@pytest.mark.django_db
def test_a_patient_erased_meanwhile_writes_no_review(doctor_with_hours):
    patient = make_user()
    appointment = completed(doctor_with_hours, patient)
    loaded = _stale(patient)
    account_delete(user=patient)

    with pytest.raises(AccountErased):
        review_create(patient=loaded, appointment_id=appointment.pk, rating=5, text="I'm Rana")
    assert not Review.objects.exists()


@pytest.mark.django_db
def test_no_reply_names_a_patient_after_their_erasure(doctor_with_hours):
    patient, other = make_user(), make_user()
    review = review_create(
        patient=patient,
        appointment_id=completed(doctor_with_hours, patient).pk,
        rating=4,
        text="Kind",
    )
    kept = review_create(
        patient=other, appointment_id=completed(doctor_with_hours, other).pk, rating=5
    )
    account_delete(user=patient)

    with pytest.raises(ReviewClosed):
        review_reply(doctor_user=doctor_with_hours.user, review_id=review.pk, text="Thanks Rana")
    assert Review.objects.get(pk=review.pk).reply == ""
    # Other patients' reviews are answered as before.
    review_reply(doctor_user=doctor_with_hours.user, review_id=kept.pk, text="Thank you")
    assert Review.objects.get(pk=kept.pk).reply == "Thank you"


@pytest.mark.django_db
def test_an_erased_account_loaded_before_its_erasure_is_not_reactivated():
    admin = make_user(role="admin")
    user = make_user()
    user_set_active(actor=admin, user=user, active=False)
    loaded = _stale(user)  # the admin's page, opened before the erasure
    account_delete(user=user, actor=admin)

    with pytest.raises(AccountErased):
        user_set_active(actor=admin, user=loaded, active=True)
    user.refresh_from_db()
    assert (user.is_active, user.deleted_at is not None) == (False, True)


@pytest.mark.django_db(transaction=True)
def test_a_profile_change_racing_an_erasure_waits_for_it_and_is_refused(
    doctor_with_hours, monkeypatch
):
    """PostgreSQL: the erasure holds the account's row while its hooks run; a profile change
    arriving then waits for the erasure to commit, sees it, and writes nothing."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks: PostgreSQL")
    user = doctor_with_hours.user
    loaded = _stale(user)
    erasing, go = threading.Event(), threading.Event()

    def paused(erased: User, person: object) -> None:
        erasing.set()
        assert go.wait(timeout=30)

    monkeypatch.setattr(
        accounts_services, "ERASURE_HOOKS", [*accounts_services.ERASURE_HOOKS, paused]
    )
    outcome: dict[str, object] = {}

    def erase() -> None:
        try:
            account_delete(user=User.objects.get(pk=user.pk))
        finally:
            connection.close()

    def change() -> None:
        try:
            doctor_profile_update(user=loaded, changes={"bio_en": "Dr Omar, 12 Nile St"})
            outcome["result"] = "written"
        except Exception as exc:
            outcome["result"] = exc
        finally:
            connection.close()

    eraser = threading.Thread(target=erase)
    eraser.start()
    assert erasing.wait(timeout=30)
    changer = threading.Thread(target=change)
    changer.start()
    time.sleep(0.5)
    assert changer.is_alive()  # waiting for the erasure's row lock
    go.set()
    eraser.join(timeout=30)
    changer.join(timeout=30)

    assert isinstance(outcome["result"], AccountErased)
    assert DoctorProfile.objects.get(pk=doctor_with_hours.pk).bio_en == ""
