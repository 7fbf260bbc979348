"""Background work of bookings, run by the task worker (django-tasks, database backend)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django_tasks import task

from bookings.models import (
    ACTIVE,
    COMPLETED_AUTOMATICALLY,
    Appointment,
    ReminderDelivery,
    Status,
)
from core.idempotency import purge_expired

# A reminder whose moment passed more than this long ago is dropped, not sent late.
REMINDER_GRACE = timedelta(minutes=10)


def reminder_offsets() -> list[int]:
    return list(getattr(settings, "REMINDER_OFFSETS_MINUTES", [24 * 60, 60]))


def schedule_reminders(appointment: Appointment) -> None:
    """Enqueue the first reminder still ahead, in the caller's transaction (so a rolled-back
    booking schedules nothing). One task per appointment at a time: each reminder, when it
    runs, enqueues the next offset (``send_reminder``)."""
    _enqueue_next_reminder(appointment, after=timezone.now())


def _enqueue_next_reminder(appointment: Appointment, *, after: Any) -> None:
    """Enqueue the reminder of the nearest offset due after ``after``, if any."""
    ahead = sorted(
        (appointment.start - timedelta(minutes=offset), offset)
        for offset in set(reminder_offsets())
        if appointment.start - timedelta(minutes=offset) > after
    )
    if ahead:
        due, offset = ahead[0]
        send_reminder.using(run_after=due).enqueue(str(appointment.id), offset)


@task()
def send_reminder(appointment_id: str, offset_minutes: int) -> str:
    """Exactly once per appointment and offset: the delivery row's unique key decides, so a
    second worker or a retry of this task sends nothing. Only confirmed appointments are
    reminded, never late; then the next offset is enqueued, unless the appointment has
    ended its life (cancelled, rejected, done) or this reminder was sent already (whoever
    sent it enqueued the next)."""
    from bookings.services import tell_both, when

    now = timezone.now()
    with transaction.atomic():
        appointment = (
            Appointment.objects.select_for_update(of=("self",))
            .select_related("doctor__user", "patient", "clinic")
            .filter(id=appointment_id)
            .first()
        )
        if appointment is None or appointment.status not in ACTIVE:
            return "skipped: not confirmed"
        if not (appointment.patient.is_active and appointment.doctor.user.is_active):
            return "skipped: a party's account is closed"
        due = appointment.start - timedelta(minutes=offset_minutes)
        if appointment.status != Status.CONFIRMED:  # a request or a hold: maybe later
            _enqueue_next_reminder(appointment, after=due)
            return "skipped: not confirmed"
        if now > due + REMINDER_GRACE or now >= appointment.start:
            _enqueue_next_reminder(appointment, after=due)
            return "skipped: past due"
        try:
            with transaction.atomic():
                ReminderDelivery.objects.create(
                    appointment=appointment, offset_minutes=offset_minutes
                )
        except IntegrityError:
            return "skipped: already sent"
        tell_both(
            appointment,
            "booking.reminder",
            lambda a, _user: (
                _("Appointment reminder"),
                _("Your appointment is on %(when)s.") % {"when": when(a)},
            ),
        )
        _enqueue_next_reminder(appointment, after=due)
    return "sent"


HOUSEKEEPING_EVERY = timedelta(minutes=1)


def auto_complete_after() -> timedelta:
    return timedelta(hours=getattr(settings, "AUTO_COMPLETE_AFTER_HOURS", 6))


@task()
def housekeeping() -> dict[str, int]:
    """Release expired holds, close the requests not answered before their start, complete
    what doctors left unmarked some hours after the end and purge expired Idempotency-Key
    records; then schedule the next run (one pending run
    at a time: ``manage.py schedule_housekeeping``)."""
    from bookings.services import end_in_bulk, holds_release, requests_lapse, told_marked

    now = timezone.now()
    # One transaction per change in bulk: each takes its event-counter locks at once, in
    # order (``tell_each``); two in one transaction would take the second's after the first's.
    with transaction.atomic():
        expired = holds_release(qs=Appointment.objects.all(), now=now)
    with transaction.atomic():
        lapsed = requests_lapse(now=now)
    with transaction.atomic():
        stale = end_in_bulk(
            Appointment.objects.filter(
                status=Status.CONFIRMED, end__lte=now - auto_complete_after()
            ),
            status=Status.COMPLETED,
            reason=COMPLETED_AUTOMATICALLY,
            kind="booking.completed",
            render=told_marked,
        )
        housekeeping.using(run_after=now + HOUSEKEEPING_EVERY).enqueue()
    purged = purge_expired()  # Idempotency-Key records past their 24 h
    return {
        "holds_released": len(expired),
        "requests_lapsed": len(lapsed),
        "auto_completed": len(stale),
        "keys_purged": purged,
    }
