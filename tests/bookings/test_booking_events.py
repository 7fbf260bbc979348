"""Every booking event of the protocol reaches both the patient and the doctor, stored (so it
can be resumed) in each one's language."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from bookings.errors import TransitionNotAllowed
from bookings.models import Appointment, BookingPolicy, Status
from bookings.services import (
    appointment_book,
    appointment_cancel,
    appointment_decide,
    appointment_mark,
    appointment_reschedule,
)
from bookings.tasks import housekeeping, remind
from realtime.models import Notification
from tests.bookings.conftest import next_slot
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def video_slot(profile) -> datetime:
    """15:00 in three days, in the doctor's own zone (video hours live there)."""
    day = (timezone.now() + timedelta(days=3)).astimezone(ZoneInfo(profile.time_zone)).date()
    return datetime.combine(day, time(15), tzinfo=ZoneInfo(profile.time_zone))


def kinds_for(user) -> list[str]:
    return list(
        Notification.objects.filter(user=user).order_by("seq").values_list("kind", flat=True)
    )


def test_each_transition_tells_both_sides(doctor_with_hours):
    doctor = doctor_with_hours.user
    patient = make_user(language="ar")
    policy = BookingPolicy.objects.get(doctor=doctor_with_hours)
    policy.requires_approval = True
    policy.save()
    a = appointment_book(
        patient=patient, doctor_id=doctor_with_hours.id, start=next_slot(hour=9), mode="in_person"
    )
    appointment_decide(doctor_user=doctor, appointment_id=a.id, accept=True)
    moved = appointment_reschedule(user=patient, appointment_id=a.id, start=next_slot(hour=11))
    assert remind(moved.id, 60, now=moved.start - timedelta(minutes=60)) == "sent"
    appointment_cancel(user=doctor, appointment_id=moved.id)
    b = appointment_book(
        patient=patient, doctor_id=doctor_with_hours.id, start=next_slot(hour=10), mode="in_person"
    )
    appointment_decide(doctor_user=doctor, appointment_id=b.id, accept=False)
    policy.requires_approval = False
    policy.save()
    start = next_slot(hour=12)
    for outcome in (Status.COMPLETED, Status.NO_SHOW):
        c = appointment_book(
            patient=patient,
            doctor_id=doctor_with_hours.id,
            start=start,
            mode="in_person",
            now=start - timedelta(days=1),
        )
        appointment_mark(
            doctor_user=doctor, appointment_id=c.id, outcome=outcome, now=start + timedelta(hours=1)
        )
        Appointment.objects.filter(id=c.id).update(status=Status.CANCELLED)  # free the slot
    expected = [
        "booking.created",
        "booking.confirmed",
        "booking.rescheduled",
        "booking.reminder",
        "booking.cancelled",
        "booking.created",
        "booking.rejected",
        "booking.created",
        "booking.completed",
        "booking.created",
        "booking.no_show",
    ]
    assert kinds_for(patient) == expected
    assert kinds_for(doctor) == expected
    assert Notification.objects.get(user=patient, kind="booking.rejected").title != (
        Notification.objects.get(user=doctor, kind="booking.rejected").title
    )  # Arabic for the patient, English for the doctor


def test_expired_holds_and_automatic_completion_are_told_too(doctor_with_hours):
    policy = BookingPolicy.objects.get(doctor=doctor_with_hours)
    policy.payment_required = True
    policy.save()
    doctor_with_hours.offers_video = True
    doctor_with_hours.save()
    patient = make_user()
    now = timezone.now()
    held = appointment_book(
        patient=patient,
        doctor_id=doctor_with_hours.id,
        start=video_slot(doctor_with_hours),
        mode="video",
        now=now - timedelta(hours=1),  # its hold ran out 45 minutes ago
    )
    assert held.status == Status.HELD
    start = next_slot(days=-2, hour=10)
    done = appointment_book(
        patient=patient,
        doctor_id=doctor_with_hours.id,
        start=start,
        mode="in_person",
        now=start - timedelta(days=1),
    )
    assert done.status == Status.CONFIRMED
    BookingPolicy.objects.filter(pk=policy.pk).update(requires_approval=True)
    asked = next_slot(days=-1, hour=11)  # a request nobody answered before its start
    unanswered = appointment_book(
        patient=make_user(),
        doctor_id=doctor_with_hours.id,
        start=asked,
        mode="in_person",
        now=asked - timedelta(days=1),
    )
    assert unanswered.status == Status.PENDING
    with pytest.raises(TransitionNotAllowed):  # too late to accept now
        appointment_decide(
            doctor_user=doctor_with_hours.user, appointment_id=unanswered.id, accept=True
        )

    assert housekeeping.call() == {
        "holds_released": 1,
        "requests_lapsed": 1,
        "auto_completed": 1,
        "reminders_sent": 0,
        "keys_purged": 0,
    }
    unanswered.refresh_from_db()
    assert unanswered.status == Status.CANCELLED
    assert unanswered.history.last().reason == "not answered in time"
    told = Notification.objects.get(user=unanswered.patient, kind="booking.cancelled")
    assert told.title == "Request not answered" and "(Africa/Cairo)" in told.body

    for user in (patient, doctor_with_hours.user):
        kinds = [k for k in kinds_for(user) if k != "booking.cancelled"]  # the lapsed request
        assert kinds.count("booking.expired") == 1
        assert kinds[-2:] in (
            ["booking.expired", "booking.completed"],
            ["booking.completed", "booking.expired"],
        )
    expired = Notification.objects.get(user=patient, kind="booking.expired")
    assert expired.data["appointment_id"] == str(held.id)
    assert expired.title == "Hold expired"


def test_a_doctor_whose_verification_is_withdrawn_keeps_no_upcoming_appointment(
    doctor_with_hours,
):
    """Rejected after being verified (from the API or the admin site: the same service):
    the upcoming appointments are cancelled and both sides told, in their language; the
    past stays as it was, and so do other doctors' appointments."""
    from accounts.models import Role
    from doctors.services import doctor_verify
    from tests.bookings.conftest import weekly_hours
    from tests.doctors.factories import doctor

    admin = make_user(role=Role.ADMIN)
    patient, arabic = make_user(), make_user(language="ar")
    upcoming = appointment_book(
        patient=patient, doctor_id=doctor_with_hours.id, start=next_slot(), mode="in_person"
    )
    second = appointment_book(
        patient=arabic, doctor_id=doctor_with_hours.id, start=next_slot(hour=11), mode="in_person"
    )
    past_start = next_slot(days=-3)
    past = appointment_book(
        patient=patient,
        doctor_id=doctor_with_hours.id,
        start=past_start,
        mode="in_person",
        now=past_start - timedelta(days=1),
    )
    other_doctor = doctor()
    weekly_hours(other_doctor, time(9), time(13))
    elsewhere = appointment_book(
        patient=patient, doctor_id=other_doctor.id, start=next_slot(hour=12), mode="in_person"
    )
    doctor_verify(actor=admin, doctor_id=doctor_with_hours.id, decision="rejected", reason="x")
    for appointment, status in (
        (upcoming, "cancelled"),
        (second, "cancelled"),
        (past, "confirmed"),
        (elsewhere, "confirmed"),
    ):
        appointment.refresh_from_db()
        assert appointment.status == status
    assert upcoming.history.last().reason == "doctor's verification withdrawn"
    told = Notification.objects.get(user=arabic, kind="booking.cancelled")
    assert "لم يعد الطبيب موثَّقًا" in told.body
    assert Notification.objects.filter(user=patient, kind="booking.cancelled").count() == 1
    assert (
        Notification.objects.filter(user=doctor_with_hours.user, kind="booking.cancelled").count()
        == 2
    )
    # verified again: bookable again, and nothing more is cancelled
    doctor_verify(actor=admin, doctor_id=doctor_with_hours.id, decision="verified")
    again = appointment_book(
        patient=patient, doctor_id=doctor_with_hours.id, start=next_slot(), mode="in_person"
    )
    assert again.status == Status.CONFIRMED


def test_a_closed_account_keeps_no_upcoming_appointment(doctor_with_hours):
    """Deactivated (by staff) or deleted (by its owner): the upcoming appointments are
    cancelled and the other party told; the past stays as it was."""
    from accounts.models import Role
    from accounts.services import account_delete, user_set_active

    admin = make_user(role=Role.ADMIN)
    leaving, deleting = make_user(), make_user()
    upcoming = appointment_book(
        patient=leaving, doctor_id=doctor_with_hours.id, start=next_slot(), mode="in_person"
    )
    past_start = next_slot(days=-3)
    past = appointment_book(
        patient=leaving,
        doctor_id=doctor_with_hours.id,
        start=past_start,
        mode="in_person",
        now=past_start - timedelta(days=1),
    )
    other = appointment_book(
        patient=deleting,
        doctor_id=doctor_with_hours.id,
        start=next_slot(hour=11),
        mode="in_person",
    )
    user_set_active(actor=admin, user=leaving, active=False)
    account_delete(user=deleting)
    for appointment, status in ((upcoming, "cancelled"), (past, "confirmed"), (other, "cancelled")):
        appointment.refresh_from_db()
        assert appointment.status == status
    assert upcoming.history.last().reason == "account closed"
    told = Notification.objects.filter(user=doctor_with_hours.user, kind="booking.cancelled")
    assert told.count() == 2
    # the time is free again
    assert (
        appointment_book(
            patient=make_user(), doctor_id=doctor_with_hours.id, start=next_slot(), mode="in_person"
        ).status
        == Status.CONFIRMED
    )


@pytest.mark.parametrize("approval", [False, True])
def test_a_paid_hold_is_confirmed_once_through_the_payment_seam(doctor_with_hours, approval):
    """What the payments module calls when an online payment succeeds (PAY-3): the hold
    becomes confirmed (or pending, for a doctor who approves bookings), both sides are told
    once, and the same payment told again changes nothing."""
    from bookings.services import appointment_paid

    BookingPolicy.objects.filter(doctor=doctor_with_hours).update(
        payment_required=True, requires_approval=approval
    )
    patient = make_user(language="ar")
    held = appointment_book(
        patient=patient,
        doctor_id=doctor_with_hours.id,
        start=video_slot(doctor_with_hours),
        mode="video",
    )
    assert held.status == Status.HELD and held.hold_expires_at is not None
    paid = appointment_paid(appointment_id=held.id)
    assert paid.status == (Status.PENDING if approval else Status.CONFIRMED)
    assert paid.hold_expires_at is None and paid.paid_at is not None
    assert paid.history.last().reason == "paid"
    kind = "booking.paid" if approval else "booking.confirmed"  # confirmed only when it is
    told = Notification.objects.get(user=patient, kind=kind)
    assert told.data["status"] == paid.status
    assert list(told.deliveries.values_list("channel", flat=True)) == ["email"]
    assert ("موافقة الطبيب" in told.body) == approval  # in the patient's language
    again = appointment_paid(appointment_id=held.id)
    assert again.status == paid.status and again.paid_at == paid.paid_at
    assert kinds_for(doctor_with_hours.user) == ["booking.created", kind]


def test_the_payment_seam_refuses_a_hold_that_ran_out(doctor_with_hours):
    from bookings.errors import AppointmentNotFound, HoldExpired
    from bookings.services import appointment_paid

    BookingPolicy.objects.filter(doctor=doctor_with_hours).update(payment_required=True)
    patient = make_user()
    held = appointment_book(
        patient=patient,
        doctor_id=doctor_with_hours.id,
        start=video_slot(doctor_with_hours),
        mode="video",
    )
    # past its expiry, not yet released: refused (the payments module refunds)
    Appointment.objects.filter(id=held.id).update(
        hold_expires_at=timezone.now() - timedelta(seconds=1)
    )
    with pytest.raises(HoldExpired):
        appointment_paid(appointment_id=held.id)
    # released by housekeeping: refused too, and the slot stays free for others
    housekeeping.call()
    held.refresh_from_db()
    assert held.status == Status.CANCELLED and held.paid_at is None
    with pytest.raises(HoldExpired):
        appointment_paid(appointment_id=held.id)
    # a confirmed appointment that was never held is no payment's to confirm
    confirmed = appointment_book(
        patient=make_user(), doctor_id=doctor_with_hours.id, start=next_slot(), mode="in_person"
    )
    with pytest.raises(HoldExpired):
        appointment_paid(appointment_id=confirmed.id)
    with pytest.raises(AppointmentNotFound):
        appointment_paid(appointment_id="00000000-0000-0000-0000-000000000000")


@pytest.mark.parametrize("then", ["completed", "cancelled by the patient"])
def test_a_payment_told_again_later_is_still_the_same_payment(doctor_with_hours, then):
    """Providers send a webhook again, days later: a payment already applied is never
    answered "hold expired" (its caller would refund a consultation that took place)."""
    from bookings.services import appointment_paid

    BookingPolicy.objects.filter(doctor=doctor_with_hours).update(payment_required=True)
    patient = make_user()
    held = appointment_book(
        patient=patient,
        doctor_id=doctor_with_hours.id,
        start=video_slot(doctor_with_hours),
        mode="video",
    )
    paid = appointment_paid(appointment_id=held.id)
    if then == "completed":
        Appointment.objects.filter(id=held.id).update(status=Status.COMPLETED)
    else:
        appointment_cancel(user=patient, appointment_id=held.id)
    again = appointment_paid(appointment_id=held.id)
    assert again.paid_at == paid.paid_at
    assert again.status == (Status.COMPLETED if then == "completed" else Status.CANCELLED)
