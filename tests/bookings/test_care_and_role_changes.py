"""Care ends with the doctor's role or either account; a role changed by an admin leaves no
upcoming appointment on the side of the role the user no longer holds; the refusals of a move
are worded for the one who moves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import translation

from accounts.models import Role, User
from accounts.services import account_delete, user_set_active, user_update_by_admin
from bookings import selectors, services
from bookings.errors import PatientBusy, PatientNotBookable
from bookings.models import Appointment, AvailabilityRule, BookingPolicy, Status
from realtime.models import Notification
from tests.bookings.conftest import next_slot
from tests.doctors.factories import doctor
from tests.factories import make_user
from tests.procs import run_on_sqlite

pytestmark = pytest.mark.django_db


def cared_for(profile, patient, now) -> Appointment:
    """A visit completed yesterday: in care for the next 90 days."""
    start = now - timedelta(days=1)
    return Appointment.objects.create(
        doctor=profile,
        patient=patient,
        mode="video",
        status=Status.COMPLETED,
        start=start,
        end=start + timedelta(minutes=30),
    )


def care_answers(profile, patient, now) -> tuple[bool, bool, list, list]:
    return (
        selectors.in_care(doctor_user=profile.user_id, patient=patient.pk, now=now),
        selectors._in_care(now).filter(doctor__user=profile.user, patient=patient).exists(),
        selectors.care_partner_ids(profile.user_id, now),
        selectors.care_partner_ids(patient.pk, now),
    )


@pytest.mark.parametrize(
    "change", ["doctor demoted", "doctor deactivated", "patient deactivated", "patient erased"]
)
def test_care_ends_with_the_doctors_role_or_either_account(change):
    """A doctor an admin moved to another role, or a closed (deactivated or erased) account on
    either side: nobody is in care any more, by the statement, the queryset and presence's
    list, and chat refuses the next message."""
    from chat import services as chat
    from chat.errors import NotInCare

    now = datetime.now(UTC)
    admin = make_user(role=Role.ADMIN)
    profile, patient = doctor(), make_user()
    cared_for(profile, patient, now)
    assert care_answers(profile, patient, now) == (True, True, [patient.pk], [profile.user_id])
    conversation, _ = chat.conversation_open(user=patient, other_id=str(profile.user_id))
    if change == "doctor demoted":
        user_update_by_admin(actor=admin, user=profile.user, changes={"role": Role.HELPER})
    elif change == "doctor deactivated":
        user_set_active(actor=admin, user=profile.user, active=False)
    elif change == "patient deactivated":
        user_set_active(actor=admin, user=patient, active=False)
    else:
        account_delete(user=patient)
    assert care_answers(profile, patient, now) == (False, False, [], [])
    speaker = patient if change.startswith("doctor") else profile.user
    speaker.refresh_from_db()
    with pytest.raises(NotInCare):
        chat.message_send(
            user=speaker, conversation_id=str(conversation.pk), text="hi", client_id="a"
        )


def check_care_statement() -> None:
    """Rows changed in the database (no receiver runs): the statement, the queryset and
    presence's list agree, on PostgreSQL and on SQLite."""
    now = datetime.now(UTC)
    for column, value, side in (
        ("role", Role.PATIENT, "doctor"),
        ("is_active", False, "doctor"),
        ("is_active", False, "patient"),
    ):
        profile, patient = doctor(), make_user()
        cared_for(profile, patient, now)
        assert care_answers(profile, patient, now) == (True, True, [patient.pk], [profile.user_id])
        who = profile.user_id if side == "doctor" else patient.pk
        User.objects.filter(pk=who).update(**{column: value})
        assert care_answers(profile, patient, now) == (False, False, [], []), (column, side)


def test_the_care_statement_follows_the_role_and_the_accounts():
    check_care_statement()


def test_the_care_statement_follows_the_role_and_the_accounts_on_sqlite(tmp_path):
    run_on_sqlite(
        "from tests.bookings.test_care_and_role_changes import check_care_statement\n"
        "check_care_statement()\nprint('sqlite ok')\n",
        tmp_path,
    )


@pytest.mark.parametrize("new_role", [Role.PATIENT, Role.HELPER])
def test_a_demoted_doctor_keeps_no_upcoming_appointment(doctor_with_hours, new_role):
    """The doctor's upcoming appointments are cancelled, the patient told why in their
    language; the past stays as it was."""
    admin = make_user(role=Role.ADMIN)
    patient = make_user(language="ar")
    upcoming = services.appointment_book(
        patient=patient, doctor_id=doctor_with_hours.id, start=next_slot(), mode="in_person"
    )
    past_start = next_slot(days=-3)
    past = services.appointment_book(
        patient=make_user(),
        doctor_id=doctor_with_hours.id,
        start=past_start,
        mode="in_person",
        now=past_start - timedelta(days=1),
    )
    user_update_by_admin(actor=admin, user=doctor_with_hours.user, changes={"role": new_role})
    upcoming.refresh_from_db()
    past.refresh_from_db()
    assert (upcoming.status, past.status) == (Status.CANCELLED, Status.CONFIRMED)
    assert upcoming.history.last().reason == "account role changed"
    with translation.override("ar"):
        assert upcoming.history.last().shown_reason == "تغيّر دور الحساب"
    told = Notification.objects.get(user=patient, kind="booking.cancelled")
    assert "تغيّر دور أحد الحسابات" in told.body


def test_a_patient_moved_to_another_role_keeps_no_upcoming_appointment(doctor_with_hours):
    admin = make_user(role=Role.ADMIN)
    patient = make_user()
    upcoming = services.appointment_book(
        patient=patient, doctor_id=doctor_with_hours.id, start=next_slot(), mode="in_person"
    )
    user_update_by_admin(actor=admin, user=patient, changes={"role": Role.HELPER})
    upcoming.refresh_from_db()
    assert upcoming.status == Status.CANCELLED
    told = Notification.objects.get(user=doctor_with_hours.user, kind="booking.cancelled")
    assert told.data["appointment_id"] == str(upcoming.id)


def test_other_changes_and_whole_row_saves_keep_the_appointments_of_the_role_held(
    doctor_with_hours,
):
    """Only a role the user no longer holds loses its appointments: an admin's other edits,
    the same role sent again and whole-row saves keep them. A whole-row save that changed the
    role is decided by the appointments that exist."""
    admin = make_user(role=Role.ADMIN)
    patient = make_user()
    mine = services.appointment_book(
        patient=patient, doctor_id=doctor_with_hours.id, start=next_slot(), mode="in_person"
    )
    doctor_user = doctor_with_hours.user
    user_update_by_admin(actor=admin, user=patient, changes={"role": Role.PATIENT})
    user_update_by_admin(actor=admin, user=doctor_user, changes={"first_name": "Omar"})
    patient.save()
    doctor_user.save()
    mine.refresh_from_db()
    assert mine.status == Status.CONFIRMED
    fresh = User.objects.get(pk=doctor_user.pk)
    fresh.role = Role.PATIENT
    fresh.save()  # whole row
    mine.refresh_from_db()
    assert mine.status == Status.CANCELLED


def other_doctor_at_the_same_hours():
    other = doctor()
    for weekday in range(7):
        AvailabilityRule.objects.create(
            doctor=other, clinic=other.clinics.get(), mode="in_person", weekday=weekday,
            start=datetime.min.time().replace(hour=9), end=datetime.min.time().replace(hour=13),
        )  # fmt: skip
    BookingPolicy.objects.create(doctor=other, min_notice_minutes=0)
    return other


def test_a_doctor_moving_a_visit_onto_the_patients_other_one_is_told_of_the_patient(
    doctor_with_hours,
):
    patient = make_user()
    moved = services.appointment_book(
        patient=patient, doctor_id=doctor_with_hours.id, start=next_slot(hour=9), mode="in_person"
    )
    services.appointment_book(
        patient=patient,
        doctor_id=other_doctor_at_the_same_hours().id,
        start=next_slot(hour=11),
        mode="in_person",
    )
    for user, message in (
        (doctor_with_hours.user, "The patient already has an appointment at this time."),
        (patient, "You already have an appointment at this time."),
    ):
        with pytest.raises(PatientBusy) as raised:
            services.appointment_reschedule(
                user=user, appointment_id=moved.id, start=next_slot(hour=11)
            )
        assert raised.value.code == "booking.patient_busy"
        assert str(raised.value.detail) == message
    with translation.override("ar"):
        with pytest.raises(PatientBusy) as raised:
            services.appointment_reschedule(
                user=doctor_with_hours.user, appointment_id=moved.id, start=next_slot(hour=11)
            )
        assert str(raised.value.detail) == "لدى المريض موعد آخر في هذا الوقت بالفعل."


def test_a_doctor_moving_the_visit_of_a_closed_account_is_told_of_the_patient(doctor_with_hours):
    """Closed without the receivers (a row changed in the database): the move is refused,
    naming the patient's account to the doctor, not the doctor to themselves."""
    patient = make_user()
    moved = services.appointment_book(
        patient=patient, doctor_id=doctor_with_hours.id, start=next_slot(hour=9), mode="in_person"
    )
    User.objects.filter(pk=patient.pk).update(is_active=False)
    with pytest.raises(PatientNotBookable):
        services.appointment_reschedule(
            user=doctor_with_hours.user, appointment_id=moved.id, start=next_slot(hour=11)
        )
    User.objects.filter(pk=patient.pk).update(is_active=True, role=Role.HELPER)
    with pytest.raises(PatientNotBookable):
        services.appointment_reschedule(
            user=doctor_with_hours.user, appointment_id=moved.id, start=next_slot(hour=11)
        )


def test_a_booking_by_a_patient_whose_role_changed_meanwhile_books_nothing(doctor_with_hours):
    """The role changed while the request ran (``patient`` is the snapshot its token gave):
    the booking finds nobody to book (the patient's account is read with the doctor's, and
    locked with it), and says the role no longer allows it."""
    from accounts.errors import RoleRequired

    patient = make_user()
    User.objects.filter(pk=patient.pk).update(role=Role.HELPER)
    with pytest.raises(RoleRequired):
        services.appointment_book(
            patient=patient, doctor_id=doctor_with_hours.id, start=next_slot(), mode="in_person"
        )
    assert not Appointment.objects.exists()
