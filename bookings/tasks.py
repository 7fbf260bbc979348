"""Background work of bookings, run by the task worker (django-tasks, database backend)."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef
from django.utils import timezone
from django.utils.translation import gettext as _
from django_tasks import task

from bookings.models import (
    COMPLETED_AUTOMATICALLY,
    Appointment,
    ReminderDelivery,
    Status,
)
from core.idempotency import purge_expired
from core.tasks import loop_again, run_steps

logger = logging.getLogger(__name__)

# A reminder whose moment passed more than this long ago is dropped, not sent late.
REMINDER_GRACE = timedelta(minutes=10)


def reminder_offsets() -> list[int]:
    return list(getattr(settings, "REMINDER_OFFSETS_MINUTES", [24 * 60, 60]))


def reminders_due(now: Any) -> list[tuple[Any, int]]:
    """The reminders to send now, as ``(appointment id, offset)``: for each offset of the
    settings, the confirmed appointments whose reminder moment (the start less the offset)
    has come, not longer ago than ``REMINDER_GRACE``, before their start, booked before that
    moment, and not reminded at that offset yet. The settings are read at every run, so an
    offset removed is no longer sent and one added applies to appointments already booked."""
    due: list[tuple[Any, int]] = []
    for offset in sorted(set(reminder_offsets()), reverse=True):
        ahead = timedelta(minutes=offset)
        due += [
            (pk, offset)
            for pk in Appointment.objects.filter(
                status=Status.CONFIRMED,
                start__gt=now,
                start__gte=now + ahead - REMINDER_GRACE,
                start__lte=now + ahead,
                created_at__lte=F("start") - ahead,
            )
            .exclude(
                Exists(
                    ReminderDelivery.objects.filter(
                        appointment=OuterRef("pk"), offset_minutes=offset
                    )
                )
            )
            .order_by("start")
            .values_list("pk", flat=True)
        ]
    return due


def send_reminders(now: Any) -> int:
    """Send every reminder due (``reminders_due``), each in its own transaction: one that
    fails is logged and tried again by the next run while it is still due. The number sent."""
    sent = 0
    for appointment_id, offset in reminders_due(now):
        try:
            # the clock of now, not of the run's start: steps before may have taken a while
            sent += remind(appointment_id, offset, now=max(now, timezone.now())) == "sent"
        except Exception:
            logger.exception(
                "reminder failed, tried again while due",
                extra={"appointment": str(appointment_id), "offset_minutes": offset},
            )
    return sent


def remind(appointment_id: Any, offset_minutes: int, *, now: Any) -> str:
    """Remind both parties of one appointment at one offset, exactly once: the delivery row's
    unique key decides, so a second worker or a second run sends nothing. Only a confirmed
    appointment whose parties' accounts are open is reminded, and never late."""
    from bookings.services import tell_both, when

    with transaction.atomic():
        appointment = (
            Appointment.objects.select_for_update(of=("self",))
            .select_related("doctor__user", "patient", "clinic")
            .filter(id=appointment_id)
            .first()
        )
        if appointment is None or appointment.status != Status.CONFIRMED:
            return "skipped: not confirmed"
        if not (appointment.patient.is_active and appointment.doctor.user.is_active):
            return "skipped: a party's account is closed"
        due = appointment.start - timedelta(minutes=offset_minutes)
        if not due <= now <= due + REMINDER_GRACE or now >= appointment.start:
            return "skipped: not due"
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
    return "sent"


HOUSEKEEPING_EVERY = timedelta(minutes=1)


def auto_complete_after() -> timedelta:
    return timedelta(hours=getattr(settings, "AUTO_COMPLETE_AFTER_HOURS", 6))


@task()
def housekeeping() -> dict[str, int | None]:
    """Every minute: release expired holds, close the requests not answered before their
    start, complete what doctors left unmarked some hours after the end, send the reminders
    due and purge expired Idempotency-Key records. The next run is enqueued first
    (``loop_again``); each step runs on its own (``run_steps``); one pending run at a time
    (``manage.py schedule_housekeeping``)."""
    from bookings.services import end_in_bulk, holds_release, requests_lapse, told_marked

    loop_again(housekeeping, HOUSEKEEPING_EVERY)
    now = timezone.now()

    # One transaction per change in bulk: each takes its event-counter locks at once, in
    # order (``tell_each``); two in one transaction would take the second's after the first's.
    @transaction.atomic
    def release() -> int:
        return len(holds_release(qs=Appointment.objects.all(), now=now))

    @transaction.atomic
    def lapse() -> int:
        return len(requests_lapse(now=now))

    @transaction.atomic
    def complete() -> int:
        stale = Appointment.objects.filter(
            status=Status.CONFIRMED, end__lte=now - auto_complete_after()
        )
        return len(
            end_in_bulk(
                stale,
                status=Status.COMPLETED,
                reason=COMPLETED_AUTOMATICALLY,
                kind="booking.completed",
                render=told_marked,
            )
        )

    return run_steps(
        "bookings",
        {
            "holds_released": release,
            "requests_lapsed": lapse,
            "auto_completed": complete,
            "reminders_sent": lambda: send_reminders(now),
            "keys_purged": purge_expired,  # Idempotency-Key records past their 24 h
        },
    )
