"""Every write of bookings: availability, booking, and the life-cycle transitions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import IntegrityError, OperationalError, connection, transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.errors import AccountInactive, RoleRequired
from accounts.models import Role, User
from accounts.permissions import require_permission, require_role
from accounts.services import user_hold_active
from audit.services import record
from bookings import selectors
from bookings.errors import (
    AppointmentNotFound,
    AppointmentOver,
    CancellationTooLate,
    DoctorNotBookable,
    HoldExpired,
    HoldNotMovable,
    HoursNotFound,
    NotVerified,
    PatientBusy,
    PatientNotBookable,
    SlotTaken,
    SlotUnavailable,
    TimeOffConflict,
    TooManyUpcoming,
    TransitionNotAllowed,
)
from bookings.models import (
    ACCOUNT_CLOSED,
    ACTIVE,
    HOLD_EXPIRED,
    PAID,
    REQUEST_LAPSED,
    RESCHEDULED,
    ROLE_CHANGED,
    VERIFICATION_WITHDRAWN,
    Appointment,
    AvailabilityRule,
    BookingPolicy,
    ExtraHours,
    Status,
    StatusChange,
    TimeOff,
)
from bookings.slots import MIDNIGHT, Hours, first_overlap
from core import db
from core.errors import InvalidRequest
from doctors.models import DoctorProfile, Verification
from realtime.services import event_counters_lock, notify


def verified_doctor(user: User, *, lock: bool = False) -> DoctorProfile:
    """The caller's verified profile; with ``lock``, locked until the transaction ends (so
    that the doctor's changes to their hours are made one at a time)."""
    require_role(user, Role.DOCTOR)
    found = DoctorProfile.objects.filter(user=user)
    if lock:
        found = found.select_for_update(no_key=True)
    profile = found.first()
    if profile is None or profile.verification != Verification.VERIFIED:
        raise NotVerified()
    return profile


def doctor_still_verified(user: User) -> None:
    """Refuse the acts that see a patient or speak as a doctor (accepting a request,
    completing an appointment or marking a no-show, replying to a review) to a doctor whose
    verification was withdrawn (rejected, or back to pending): ``booking.doctor_not_verified``.
    Rejecting a request and cancelling stay open to them: those free the patient. Read
    unlocked: a withdrawal committed just after is as if it came after (one to rejected
    then cancels what was accepted, waiting for this transaction's lock on it)."""
    try:
        verified_doctor(user)
    except NotVerified:
        raise NotVerified(NotVerified.to_see_patients) from None


# Bounds on what one doctor keeps (a week's hours are a few rules; each is read by every
# booking and slot list): lists of hours fit in one page.
MAX_RULES = 100
MAX_EXTRA_HOURS = 200  # to come
MAX_TIME_OFF = timedelta(days=731)


def _hours_owner(
    user: User,
    fields: dict[str, Any],
    *,
    replacing: AvailabilityRule | ExtraHours | None = None,
) -> DoctorProfile:
    """The verified doctor publishing these hours, in one of their clinics and in a mode
    their profile offers, hours that hold a slot and meet none of their other hours. The
    profile stays locked: two hours created at once are checked for overlap one after the
    other, each seeing the other."""
    doctor = verified_doctor(user, lock=True)
    start, end, mode = fields["start"], fields["end"], fields["mode"]
    if fields.get("clinic_id") and not doctor.clinics.filter(id=fields["clinic_id"]).exists():
        raise InvalidRequest(fields={"clinic_id": _("This clinic is not yours.")})
    if mode == "in_person" and not fields.get("clinic_id"):
        raise InvalidRequest(fields={"clinic_id": _("In-person hours need one of your clinics.")})
    if mode not in doctor.modes:
        raise InvalidRequest(
            fields={
                "mode": _("You do not offer this kind of consultation: turn it on in your profile.")
            }
        )
    length = _minute_of(end, closing=True) - _minute_of(start)
    if length <= 0:
        raise InvalidRequest(fields={"end": _("The end must be after the start.")})
    if fields.get("slot_minutes", 30) > length:
        raise InvalidRequest(
            fields={
                "slot_minutes": _("A slot must fit in the hours, which last %(minutes)d minutes.")
                % {"minutes": length}
            }
        )
    _check_no_overlap(doctor, fields, replacing)
    return doctor


def _minute_of(wall: time, *, closing: bool = False) -> int:
    """Minutes since the day's midnight; a closing 00:00 is the next midnight (24:00)."""
    return 24 * 60 if closing and wall == MIDNIGHT else wall.hour * 60 + wall.minute


def _span_label(hours: Hours) -> str:
    """``09:00-17:00`` as a doctor wrote it; hours until midnight end at ``24:00``."""
    end = "24:00" if hours.end == MIDNIGHT else f"{hours.end:%H:%M}"
    return f"{hours.start:%H:%M}-{end}"


def _check_no_overlap(
    doctor: DoctorProfile,
    fields: dict[str, Any],
    replacing: AvailabilityRule | ExtraHours | None,
) -> None:
    """A time is offered once: hours that meet the doctor's other hours (weekly or one-off,
    compared as instants, each in its zone, in any mode: ``_meet``) are refused, whatever
    their mode or clinic.
    Where two sources overlapped, the slot list kept one source's slots, so the other mode or
    clinic was silently never bookable then. ``replacing``: the weekly or one-off hours being
    changed, which the new hours may of course meet."""
    clinic = (
        doctor.clinics.filter(id=fields["clinic_id"]).first() if fields.get("clinic_id") else None
    )
    new = Hours(
        zone=ZoneInfo(clinic.time_zone if clinic else doctor.time_zone),
        start=fields["start"],
        end=fields["end"],
        slot_minutes=fields.get("slot_minutes", 30),
        buffer_minutes=fields.get("buffer_minutes", 0),
        mode=fields["mode"],
        weekday=fields.get("weekday"),
        on_date=fields.get("date"),
    )
    existing = selectors.hours_of(doctor, every_mode=True)
    if replacing is not None:  # no two of a doctor's hours are alike: they would overlap
        old = (
            getattr(replacing, "weekday", None),
            getattr(replacing, "date", None),
            replacing.start,
            replacing.end,
            replacing.mode,
            str(replacing.clinic_id),
        )
        existing = [
            h
            for h in existing
            if (h.weekday, h.on_date, h.start, h.end, h.mode, str(h.clinic_id)) != old
        ]
    found = next((other for other in existing if _meet(new, other)), None)
    if found is not None:
        raise InvalidRequest(
            fields={
                "start": _("These hours overlap hours you already offer (%(hours)s).")
                % {"hours": _span_label(found)}
            }
        )


def _meet(new: Hours, other: Hours) -> bool:
    """Whether two sources of hours offer some same instant: weekly hours against weekly
    hours over the coming year (its clock changes included), anything against one-off hours
    on their day (give or take a day: zones differ), wherever that day is."""
    dated = new.on_date or other.on_date
    if dated is None:
        start = timezone.now()
        return first_overlap(new, [other], start, start + timedelta(days=371)) is not None
    start = datetime.combine(dated - timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return first_overlap(new, [other], start, start + timedelta(days=3)) is not None


def hours_zone_check(
    doctor: DoctorProfile, *, field: str, clinic_id: Any = None, zone: str | None = None
) -> None:
    """Hours keep their wall-clock times when their zone changes: the profile's (hours
    without a clinic; ``doctor.time_zone`` already set to the new one) or a clinic's that
    moves (``clinic_id``, ``zone``). Refused (on ``field``) if, in the new zone, some of them
    would meet the doctor's other hours, as :func:`_check_no_overlap` refuses new hours: the
    slot list would keep one source's slots and silently drop the other's."""
    moved, kept = [], []
    yesterday = timezone.now().date() - timedelta(days=1)  # every zone's today is after it
    for hours in selectors.hours_of(doctor, every_mode=True):
        if hours.on_date is not None and hours.on_date < yesterday:
            continue  # one-off hours gone by offer nothing to meet
        if clinic_id is None and hours.clinic_id is None:
            moved.append(hours)
        elif clinic_id is not None and str(hours.clinic_id) == str(clinic_id):
            moved.append(replace(hours, zone=ZoneInfo(zone or doctor.time_zone)))
        else:
            kept.append(hours)
    for new in moved:  # hours that move together keep their distance
        found = next((other for other in kept if _meet(new, other)), None)
        if found is not None:
            raise InvalidRequest(
                fields={
                    field: _(
                        "In the new time zone your hours %(hours)s would overlap your hours "
                        "%(other)s: change or remove some first."
                    )
                    % {"hours": _span_label(new), "other": _span_label(found)}
                }
            )


@transaction.atomic
def rule_create(*, user: User, **fields: Any) -> AvailabilityRule:
    """Weekly hours; only verified doctors may publish availability."""
    doctor = _hours_owner(user, fields)
    if AvailabilityRule.objects.filter(doctor=doctor).count() >= MAX_RULES:
        raise InvalidRequest(
            _("You keep %(count)d weekly hours already: remove some first.") % {"count": MAX_RULES}
        )
    rule = AvailabilityRule(doctor=doctor, **fields)
    rule.full_clean()
    rule.save()
    return rule


@transaction.atomic
def rule_update(*, user: User, rule_id: Any, changes: dict[str, Any]) -> AvailabilityRule:
    """Change weekly hours in place (the same checks as new hours, against the others)."""
    doctor = verified_doctor(user, lock=True)
    rule = AvailabilityRule.objects.filter(doctor=doctor, id=rule_id).first()
    if rule is None:
        raise HoursNotFound()
    fields = {
        name: changes.get(name, getattr(rule, name))
        for name in ("weekday", "start", "end", "mode", "clinic_id", "slot_minutes")
    }
    fields["buffer_minutes"] = changes.get("buffer_minutes", rule.buffer_minutes)
    _hours_owner(user, fields, replacing=rule)
    for name, value in fields.items():
        setattr(rule, name, value)
    rule.full_clean()
    rule.save()
    return rule


def _delete_own(model: Any, user: User, pk: Any) -> None:
    doctor = verified_doctor(user, lock=True)
    if not model.objects.filter(doctor=doctor, id=pk).delete()[0]:
        raise HoursNotFound()


@transaction.atomic
def rule_delete(*, user: User, rule_id: Any) -> None:
    _delete_own(AvailabilityRule, user, rule_id)


@transaction.atomic
def extra_hours_create(*, user: User, **fields: Any) -> ExtraHours:
    doctor = _hours_owner(user, fields)
    _check_extra_hours_date(doctor, fields)
    _check_extra_hours_room(doctor)
    extra = ExtraHours(doctor=doctor, **fields)
    extra.full_clean()
    extra.save()
    return extra


_EXTRA_FIELDS = ("date", "start", "end", "mode", "clinic_id", "slot_minutes", "buffer_minutes")


@transaction.atomic
def extra_hours_update(*, user: User, extra_id: Any, changes: dict[str, Any]) -> ExtraHours:
    """Change one-off hours in place: the result is checked as new one-off hours are (against
    the doctor's other hours, and within the number kept to come)."""
    doctor = verified_doctor(user, lock=True)
    extra = ExtraHours.objects.filter(doctor=doctor, id=extra_id).first()
    if extra is None:
        raise HoursNotFound()
    fields = {name: changes.get(name, getattr(extra, name)) for name in _EXTRA_FIELDS}
    _hours_owner(user, fields, replacing=extra)
    _check_extra_hours_date(doctor, fields)
    _check_extra_hours_room(doctor, but=extra)
    for name, value in fields.items():
        setattr(extra, name, value)
    extra.full_clean()
    extra.save()
    return extra


def _check_extra_hours_date(doctor: DoctorProfile, fields: dict[str, Any]) -> None:
    """One-off hours are for a day still to come (today included) where they are kept: at
    their clinic, else in the doctor's zone. A day gone by offers no slot, is not listed and
    does not count against :data:`MAX_EXTRA_HOURS`: accepted, such hours piled up unseen."""
    clinic_id = fields.get("clinic_id")
    zone = (
        doctor.clinics.filter(id=clinic_id).values_list("time_zone", flat=True).first()
        if clinic_id
        else None
    )
    if fields["date"] < timezone.now().astimezone(ZoneInfo(zone or doctor.time_zone)).date():
        raise InvalidRequest(
            fields={"date": _("This day has gone by: choose today or a later day.")}
        )


def _check_extra_hours_room(doctor: DoctorProfile, *, but: ExtraHours | None = None) -> None:
    """A doctor keeps at most ``MAX_EXTRA_HOURS`` one-off hours to come (``but`` the ones
    being changed)."""
    ahead = ExtraHours.objects.filter(doctor=doctor, date__gte=timezone.now().date())
    if but is not None:
        ahead = ahead.exclude(id=but.id)
    if ahead.count() >= MAX_EXTRA_HOURS:
        raise InvalidRequest(
            _("You keep %(count)d one-off hours to come already: remove some first.")
            % {"count": MAX_EXTRA_HOURS}
        )


@transaction.atomic
def extra_hours_delete(*, user: User, extra_id: Any) -> None:
    _delete_own(ExtraHours, user, extra_id)


_POLICY_FIELDS = {
    "min_notice_minutes",
    "window_days",
    "cancel_cutoff_hours",
    "requires_approval",
    "payment_required",
    "hold_minutes",
}


@transaction.atomic
def policy_update(*, user: User, changes: dict[str, Any]) -> BookingPolicy:
    doctor = verified_doctor(user)
    policy = BookingPolicy.objects.select_for_update().get_or_create(doctor=doctor)[0]
    turned_on = changes.get("payment_required") and not policy.payment_required
    if turned_on and not settings.ONLINE_PAYMENTS_ENABLED:
        # Every video or chat booking would be held for a payment nobody can make, and expire.
        raise InvalidRequest(
            fields={
                "payment_required": _(
                    "Online payment is not available yet: patients pay at the appointment."
                )
            }
        )
    for key in _POLICY_FIELDS & changes.keys():
        setattr(policy, key, changes[key])
    if policy.min_notice_minutes >= policy.window_days * 24 * 60:
        # No moment would be far enough ahead and near enough at once: not one slot listed.
        field = "window_days" if "window_days" in changes else "min_notice_minutes"
        raise InvalidRequest(
            fields={field: _("The minimum notice must be shorter than the booking window.")}
        )
    policy.save()
    return policy


@transaction.atomic
def time_off_create(*, user: User, start: datetime, end: datetime, reason: str = "") -> TimeOff:
    """Time off, which no appointment may fall in: the doctor cancels or moves those first
    (their patients are told why), so that nobody keeps a visit the doctor will not be at."""
    user_hold_active(user)  # its reason is not stored after an erasure of the account
    doctor = verified_doctor(user, lock=True)
    _check_time_off(doctor, start, end)
    return TimeOff.objects.create(doctor=doctor, start=start, end=end, reason=reason)


@transaction.atomic
def time_off_update(*, user: User, time_off_id: Any, changes: dict[str, Any]) -> TimeOff:
    """Change time off in place: the result is checked as new time off is, so time off moved
    or stretched over an appointment is refused (``booking.time_off_conflict``) until the
    doctor cancels or moves it."""
    user_hold_active(user)  # as time_off_create: the reason may change
    doctor = verified_doctor(user, lock=True)
    off = TimeOff.objects.filter(doctor=doctor, id=time_off_id).first()
    if off is None:
        raise HoursNotFound()
    start, end = changes.get("start", off.start), changes.get("end", off.end)
    _check_time_off(doctor, start, end)
    off.start, off.end, off.reason = start, end, changes.get("reason", off.reason)
    off.save(update_fields=["start", "end", "reason"])
    return off


def _check_time_off(doctor: DoctorProfile, start: datetime, end: datetime) -> None:
    """Time off that makes sense, which no active appointment of the doctor falls in."""
    now = timezone.now()
    if end <= start:
        raise InvalidRequest(fields={"end": _("The end must be after the start.")})
    if end <= now:
        raise InvalidRequest(fields={"end": _("This time off has already ended.")})
    if end - start > MAX_TIME_OFF:
        raise InvalidRequest(fields={"end": _("Time off may last at most two years.")})
    # A booking beside this locks the profile for share: it commits first, and is seen here.
    kept = selectors.holding(
        Appointment.objects.filter(doctor=doctor, start__lt=end, end__gt=start), now
    ).order_by("start")
    clashes = [str(pk) for pk in kept.values_list("id", flat=True)[:20]]
    if clashes:
        raise TimeOffConflict(fields={"appointments": clashes})


@transaction.atomic
def time_off_delete(*, user: User, time_off_id: Any) -> None:
    _delete_own(TimeOff, user, time_off_id)


def _history(appointment: Appointment, actor: User | None, reason: str = "") -> None:
    db.insert(
        StatusChange(
            appointment=appointment, status=appointment.status, actor=actor, reason=reason[:500]
        )
    )


def tell_both(
    appointment: Appointment, kind: str, render: Any, *, extra: dict[str, Any] | None = None
) -> None:
    """Both parties told ``kind`` about the appointment; ``extra``: more event data."""
    notify(
        users=[appointment.patient, appointment.doctor.user],
        kind=kind,
        data={
            "appointment_id": str(appointment.id),
            "status": appointment.status,
            "start": appointment.start.isoformat(),
            **(extra or {}),
        },
        render=lambda user: render(appointment, user),
    )


def tell_each(
    *, appointment_ids: list[Any], kind: str, render: Any, lock_also: Iterable[Any] = ()
) -> None:
    """``tell_both`` for each of these appointments (changed in bulk), every recipient's
    event counter locked first, in ``notify()``'s order (``event_counters_lock``), with those
    of ``lock_also``: users this transaction tells afterwards (a booking that released
    expired holds in its way tells its own parties next)."""
    changed = list(
        Appointment.objects.filter(id__in=appointment_ids)
        .select_related("doctor__user", "patient", "clinic")
        .order_by("start", "id")
    )
    event_counters_lock(
        [*lock_also, *(u for a in changed for u in (a.patient_id, a.doctor.user_id))]
    )
    for appointment in changed:
        tell_both(appointment, kind, render)


def holds_release(*, qs: Any, now: datetime, lock_also: Iterable[Any] = ()) -> list[Any]:
    """Cancel the expired holds among ``qs``; both sides are told ``booking.expired``."""
    return end_in_bulk(
        qs.filter(status=Status.HELD, hold_expires_at__lte=now),
        lock_also=lock_also,
        status=Status.CANCELLED,
        reason=HOLD_EXPIRED,
        kind="booking.expired",
        render=lambda a, u: (
            _("Hold expired"),
            _("The slot held for %(when)s was released: it was not paid in time.")
            % {"when": when(a)},
        ),
    )


def requests_lapse(*, now: datetime) -> list[Any]:
    """Cancel the requests their doctor did not answer before their start."""
    return end_in_bulk(
        Appointment.objects.filter(status=Status.PENDING, start__lte=now),
        status=Status.CANCELLED,
        reason=REQUEST_LAPSED,
        kind="booking.cancelled",
        render=lambda a, u: (
            _("Request not answered"),
            _("The request for %(when)s was not answered by the doctor in time.")
            % {"when": when(a)},
        ),
    )


def appointments_close_for(user: User, *, now: datetime | None = None) -> list[Any]:
    """Cancel the upcoming appointments of a user whose account was closed (deactivated or
    deleted): the other party is told, and the time is free again."""
    mine = Q(patient=user) | Q(doctor__in=DoctorProfile.objects.filter(user=user).values("id"))
    return _cancel_upcoming(
        mine,
        now=now,
        reason=ACCOUNT_CLOSED,
        render=lambda a, u: (
            _("Appointment cancelled"),
            _("The appointment on %(when)s was cancelled: an account was closed.")
            % {"when": when(a)},
        ),
    )


def appointments_close_for_role(user: User, *, now: datetime | None = None) -> list[Any]:
    """Cancel the upcoming appointments a user keeps on the side of a role they no longer hold
    (an admin changed it): as a doctor unless they are one, as a patient unless they are one.
    Nobody could see or cancel them any more (``visible_to`` follows the role), while the
    other party expected the visit. Both sides are told, as for a closed account."""
    sides = Q()
    if user.role != Role.PATIENT:
        sides |= Q(patient=user)
    if user.role != Role.DOCTOR:
        sides |= Q(doctor__in=DoctorProfile.objects.filter(user=user).values("id"))
    return _cancel_upcoming(
        sides,
        now=now,
        reason=ROLE_CHANGED,
        render=lambda a, u: (
            _("Appointment cancelled"),
            _("The appointment on %(when)s was cancelled: an account's role was changed.")
            % {"when": when(a)},
        ),
    )


def appointments_withdraw_for(doctor: DoctorProfile, *, now: datetime | None = None) -> list[Any]:
    """Cancel the upcoming appointments of a doctor whose verification was withdrawn (a
    verified doctor rejected): only verified doctors see patients. Both sides are told."""
    return _cancel_upcoming(
        Q(doctor=doctor),
        now=now,
        reason=VERIFICATION_WITHDRAWN,
        render=lambda a, u: (
            _("Appointment cancelled"),
            _("The appointment on %(when)s was cancelled: the doctor is no longer verified.")
            % {"when": when(a)},
        ),
    )


def _cancel_upcoming(which: Q, *, now: datetime | None, reason: str, render: Any) -> list[Any]:
    return end_in_bulk(
        Appointment.objects.filter(which, status__in=ACTIVE, end__gt=now or timezone.now()),
        skip_locked=False,  # runs once: every one of them, waiting for a change under way
        status=Status.CANCELLED,
        reason=reason,
        kind="booking.cancelled",
        render=render,
    )


def end_in_bulk(
    qs: Any,
    *,
    status: str,
    reason: str,
    kind: str,
    render: Any,
    skip_locked: bool = True,
    lock_also: Iterable[Any] = (),
) -> list[Any]:
    """Move the appointments of ``qs`` to ``status``, with a history row each giving
    ``reason``, and tell both sides of each ``kind``; the ids moved. Rows another
    transaction holds are skipped (a periodic task meets them on its next run), or waited
    for without ``skip_locked``. ``lock_also``: see ``tell_each``."""
    locked = qs.select_for_update(skip_locked=skip_locked, of=("self",))
    ids = list(locked.values_list("id", flat=True))
    if ids:
        Appointment.objects.filter(id__in=ids).update(status=status, updated_at=timezone.now())
        StatusChange.objects.bulk_create(
            [StatusChange(appointment_id=i, status=status, reason=reason) for i in ids]
        )
        tell_each(appointment_ids=ids, kind=kind, render=render, lock_also=lock_also)
    return ids


def told_marked(a: Appointment, u: User) -> tuple[str, str]:
    """The message of ``booking.completed`` and ``booking.no_show``."""
    return (
        _("Appointment completed") if a.status == Status.COMPLETED else _("Missed appointment"),
        _("The appointment on %(when)s is recorded as %(status)s.")
        % {"when": when(a), "status": a.get_status_display()},
    )


def appointment_zone(appointment: Appointment) -> ZoneInfo:
    """The zone an appointment's time is told in: its clinic's, or without a clinic the
    doctor's profile zone (the zones its hours are kept in). A booking that has just read the
    hours leaves it on the instance (``_zone``): no query."""
    zone = appointment.__dict__.get("_zone")
    if zone is None:
        clinic = appointment.clinic if appointment.clinic_id else None
        zone = ZoneInfo(clinic.time_zone if clinic else appointment.doctor.time_zone)
        appointment.__dict__["_zone"] = zone
    return zone  # type: ignore[no-any-return]


def when(appointment: Appointment) -> str:
    """The start as both parties read it: the wall time in :func:`appointment_zone`, named
    (a profile's own zone is UTC until its owner sets one)."""
    local = appointment.start.astimezone(appointment_zone(appointment))
    return f"{local:%Y-%m-%d %H:%M} ({appointment_zone(appointment).key})"


def _zone_of_slot(hours: list[Any], slot: Any) -> ZoneInfo:
    return next(h.zone for h in hours if h.clinic_id == slot.clinic_id)  # type: ignore[no-any-return]


@transaction.atomic
def appointment_book(
    *,
    patient: User,
    doctor_id: Any,
    start: datetime,
    mode: str,
    clinic_id: Any = None,
    reason: str = "",
    now: datetime | None = None,
) -> Appointment:
    """Book a free slot. The slot is checked against the doctor's hours, time off, notice and
    window; the database settles races (exclusion constraint on PostgreSQL, a serialised write
    transaction on SQLite): a lost race is ``booking.slot_taken``."""
    require_role(patient, Role.PATIENT)
    now = now or timezone.now()
    doctor = selectors.bookable_doctor(doctor_id, patient_id=patient.pk)
    if doctor is None:
        raise _not_bookable(patient, patient.pk)
    schedule = selectors.schedule_of(doctor, fresh=True)
    policy = schedule[0]
    slot = _matching_slot(doctor, start, mode, clinic_id, now, schedule)
    if slot is None:
        # Offered at all? Then someone else has just taken it (409); else it never was (422).
        if _matching_slot(doctor, start, mode, clinic_id, now, schedule, ignore_bookings=True):
            raise SlotTaken()
        raise SlotUnavailable()
    _check_upcoming_quota(patient, doctor, now)
    # Online payment is required only where it can be made (ONLINE_PAYMENTS_ENABLED).
    if policy.payment_required and settings.ONLINE_PAYMENTS_ENABLED and mode != "in_person":
        # Never past the start: a payment made once the visit has begun is refused.
        status, hold = Status.HELD, min(now + timedelta(minutes=policy.hold_minutes), slot.start)
    else:
        status, hold = (Status.PENDING if policy.requires_approval else Status.CONFIRMED), None
    appointment = Appointment(
        doctor=doctor,
        patient=patient,
        clinic_id=slot.clinic_id,
        mode=mode,
        start=slot.start,
        end=slot.end,
        status=status,
        reason=reason,
        hold_expires_at=hold,
    )
    appointment.__dict__["_zone"] = _zone_of_slot(schedule[1], slot)
    _insert(appointment, now, patient)
    _history(appointment, patient)
    tell_both(
        appointment,
        "booking.created",
        lambda a, user: (
            _("New appointment"),
            _("%(patient)s booked %(when)s.")
            % {"patient": a.patient.full_name or _("A patient"), "when": when(a)},
        ),
    )
    return appointment


def _check_upcoming_quota(patient: User, doctor: DoctorProfile, now: datetime) -> None:
    """A patient holds at most ``BOOKING_MAX_UPCOMING`` active upcoming appointments, and
    ``BOOKING_MAX_UPCOMING_PER_DOCTOR`` with one doctor: one account cannot take every free
    slot of a doctor (nor keep re-holding them). The patient's bookings are serialised on
    PostgreSQL (a transaction lock on the patient's id, nobody else's bookings wait), so two
    at once cannot both pass the count; SQLite serialises every write already. A move keeps
    the count as it is and is not checked, but for one that ended unmarked (a doctor may move
    it ahead: it was not counted)."""
    total = settings.BOOKING_MAX_UPCOMING
    per_doctor = settings.BOOKING_MAX_UPCOMING_PER_DOCTOR
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext(%s))", [f"booking-quota:{patient.pk}"]
            )
    counts = selectors.holding(
        Appointment.objects.filter(patient=patient, end__gt=now), now
    ).aggregate(total=Count("id"), with_doctor=Count("id", filter=Q(doctor=doctor)))
    if counts["total"] >= total or counts["with_doctor"] >= per_doctor:
        raise TooManyUpcoming()


def _not_bookable(user: User, patient_id: Any) -> Exception:
    """Why a booking or a move found nobody to book (``bookable_doctor`` answered None), as the
    acting user reads it: their own account was closed, or its role changed, while the request
    ran (its token was checked before); to a doctor moving an appointment, the patient's
    account is closed (or no longer a patient's); or else the doctor is not bookable."""
    acting = User.objects.filter(pk=user.pk).values_list("is_active", "role").first()
    if acting is None or not acting[0]:
        return AccountInactive()
    if acting[1] != user.role:
        return RoleRequired()
    patient = User.objects.filter(pk=patient_id, is_active=True, role=Role.PATIENT)
    if str(patient_id) != str(user.pk) and not patient.exists():
        return PatientNotBookable()
    return DoctorNotBookable()


def _insert(appointment: Appointment, now: datetime, actor: User) -> None:
    """Insert, letting the database decide conflicts: ``INSERT ... ON CONFLICT DO NOTHING``
    meets the exclusion constraints without an error, so no savepoint is needed around it.
    Two conflicting inserts checked at the same instant may deadlock on the constraint
    (PostgreSQL reports 40P01 for the loser): that is a lost race too, not a server error. A
    hold past its expiry still in the way is released (lazily: a task also does it on a
    schedule) and the insert tried again."""
    for retry in (False, True):
        try:
            if db.insert(appointment, ignore_conflicts=True):
                return
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", "") == "40P01":
                raise SlotTaken() from exc
            raise
        except IntegrityError as exc:  # its clinic removed at this very moment
            if getattr(exc.__cause__, "sqlstate", "") == "23503":
                raise SlotUnavailable() from exc
            raise
        if not retry and _release_expired_holds(appointment, now):
            continue
        patient_busy = Appointment.objects.filter(
            patient_id=appointment.patient_id,
            status__in=ACTIVE,
            start__lt=appointment.end,
            end__gt=appointment.start,
        ).exists()
        if not patient_busy:
            raise SlotTaken()
        # Told to the one who acts: a doctor moving the visit is not the one who is busy.
        mine = actor.pk == appointment.patient_id
        raise PatientBusy() if mine else PatientBusy(PatientBusy.to_the_doctor)


def _release_expired_holds(appointment: Appointment, now: datetime) -> int:
    """Release the expired holds overlapping the appointment, of its doctor or its patient
    (as the housekeeping task does: history rows, both sides told)."""
    return len(
        holds_release(
            qs=Appointment.objects.filter(
                Q(doctor_id=appointment.doctor_id) | Q(patient_id=appointment.patient_id),
                start__lt=appointment.end,
                end__gt=appointment.start,
            ),
            now=now,
            lock_also=(appointment.patient_id, appointment.doctor.user_id),
        )
    )


def _matching_slot(
    doctor: DoctorProfile,
    start: datetime,
    mode: str,
    clinic_id: Any,
    now: datetime,
    schedule: selectors.Schedule,
    ignore_bookings: bool = False,
) -> Any:
    # The slots starting within a minute, worked out as the slot list works them out: from
    # ``selectors.lookback`` before (where two slots meet, the earlier is offered), so the
    # booking keeps exactly the slots the list shows.
    slots = selectors.doctor_slots(
        doctor=doctor,
        start=start,
        end=start + timedelta(minutes=1),
        now=now,
        schedule=schedule,
        ignore_bookings=ignore_bookings,
    )
    return next(
        (
            s
            for s in slots
            if s.start == start
            and s.mode == mode
            and (clinic_id is None or str(s.clinic_id) == str(clinic_id))
        ),
        None,
    )


def _locked(viewer: User, appointment_id: Any, seen: Appointment | None = None) -> Appointment:
    """The appointment, locked, for a change by one of its parties, or by staff allowed to
    change appointments (seeing them is not enough). ``seen``: the appointment as
    ``appointment_get`` answered it to this viewer already."""
    appointment = seen or selectors.appointment_get(viewer=viewer, appointment_id=appointment_id)
    if viewer.role not in (Role.PATIENT, Role.DOCTOR):
        require_permission(viewer, "bookings.change_appointment")
    return (
        Appointment.objects.select_for_update(of=("self",))
        .select_related("doctor__user", "patient", "clinic")
        .get(pk=appointment.pk)
    )


@transaction.atomic
def appointment_decide(
    *, doctor_user: User, appointment_id: Any, accept: bool, reason: str = ""
) -> Appointment:
    """The doctor accepts or rejects a pending request."""
    require_role(doctor_user, Role.DOCTOR)
    if accept:
        doctor_still_verified(doctor_user)
    appointment = _locked(doctor_user, appointment_id)
    if appointment.status != Status.PENDING or (accept and appointment.start <= timezone.now()):
        raise TransitionNotAllowed()  # a request not answered before its start has lapsed
    appointment.status = Status.CONFIRMED if accept else Status.REJECTED
    appointment.save(update_fields=["status", "updated_at"])
    _history(appointment, doctor_user, reason)
    kind = "booking.confirmed" if accept else "booking.rejected"
    tell_both(
        appointment,
        kind,
        lambda a, user: (
            _("Appointment confirmed") if accept else _("Appointment declined"),
            (
                _("Your appointment on %(when)s is confirmed.")
                if accept
                else _("The doctor declined the appointment on %(when)s.")
            )
            % {"when": when(a)},
        ),
    )
    return appointment


@transaction.atomic
def appointment_paid(*, appointment_id: Any, now: datetime | None = None) -> Appointment:
    """The seam through which the payments module confirms a held appointment once it is
    paid (PAY-3; bookings never imports payments): under a lock, a hold still running
    becomes ``pending`` for a doctor who approves bookings (both sides are told
    ``booking.paid``), else ``confirmed`` (``booking.confirmed``). A hold that ran out (released
    or not yet), or whose appointment has begun, is refused with
    ``booking.hold_expired``: the caller refunds the payment. Telling it twice of the same
    payment (a provider's webhook sent again) changes nothing the second time."""
    now = now or timezone.now()
    appointment = (
        Appointment.objects.select_for_update(of=("self",))
        .select_related("doctor__user", "patient", "clinic", "doctor__booking_policy")
        .filter(id=appointment_id)
        .first()
    )
    if appointment is None:
        raise AppointmentNotFound()
    if appointment.paid_at:
        return appointment  # this payment was applied already, whatever happened since
    if (
        appointment.status != Status.HELD
        or (appointment.hold_expires_at or now) <= now
        or appointment.start <= now  # a hold kept past the start (made before it was capped)
    ):
        raise HoldExpired()
    approval = selectors.policy_for(appointment.doctor).requires_approval
    appointment.status = Status.PENDING if approval else Status.CONFIRMED
    appointment.hold_expires_at, appointment.paid_at = None, now
    appointment.save(update_fields=["status", "hold_expires_at", "paid_at", "updated_at"])
    _history(appointment, None, PAID)
    tell_both(
        appointment,
        # Paid and confirmed, or paid and now the doctor's to approve: not "confirmed" then.
        "booking.confirmed" if appointment.status == Status.CONFIRMED else "booking.paid",
        lambda a, user: (
            _("Payment received"),
            (
                _("The appointment on %(when)s is paid and awaits the doctor's approval.")
                if a.status == Status.PENDING
                else _("The appointment on %(when)s is paid and confirmed.")
            )
            % {"when": when(a)},
        ),
    )
    return appointment


def _check_cutoff(appointment: Appointment, now: datetime) -> None:
    """A patient's change inside the doctor's cancellation cut-off is refused."""
    cutoff = selectors.policy_for(appointment.doctor).cancel_cutoff_hours
    if appointment.start - now < timedelta(hours=cutoff):
        raise CancellationTooLate()


@transaction.atomic
def appointment_cancel(
    *, user: User, appointment_id: Any, reason: str = "", now: datetime | None = None
) -> Appointment:
    """Patients cannot cancel inside the doctor's cut-off (an unpaid hold they can always
    release, and a request the doctor has not answered yet they can always withdraw);
    doctors can always cancel until the end (the patient is told why), and so can staff
    allowed to change appointments (audited), at any time. Once the appointment has ended,
    its parties cannot cancel it: that would erase its outcome (never completed nor a
    no-show, and no review); the doctor marks it instead. The reason is kept in the
    appointment's history (encrypted) and read there: the notification, which may leave as
    an e-mail or a text message, only says there is one."""
    now = now or timezone.now()
    appointment = _locked(user, appointment_id)
    if appointment.status not in ACTIVE:
        raise TransitionNotAllowed()
    if user.role in (Role.PATIENT, Role.DOCTOR) and appointment.end <= now:
        if user.role == Role.DOCTOR and appointment.status == Status.CONFIRMED:
            raise AppointmentOver(AppointmentOver.to_the_doctor)
        raise AppointmentOver()
    if user.role == Role.PATIENT and appointment.status not in (Status.HELD, Status.PENDING):
        _check_cutoff(appointment, now)
    appointment.status = Status.CANCELLED
    appointment.save(update_fields=["status", "updated_at"])
    _history(appointment, user, reason)
    if user.role not in (Role.PATIENT, Role.DOCTOR):
        record(
            action="appointment.cancelled_by_staff",
            actor_id=user.pk,
            actor_role=user.role,
            target_type="appointment",
            target_id=str(appointment.pk),
            data={"with_reason": bool(reason)},  # the reason itself: in the history, encrypted
        )
    tell_both(
        appointment,
        "booking.cancelled",
        lambda a, u: (
            _("Appointment cancelled"),
            (
                _("The appointment on %(when)s was cancelled. The reason is in its history.")
                if reason
                else _("The appointment on %(when)s was cancelled.")
            )
            % {"when": when(a)},
        ),
    )
    return appointment


@transaction.atomic
def appointment_mark(
    *, doctor_user: User, appointment_id: Any, outcome: str, now: datetime | None = None
) -> Appointment:
    """After the start, the doctor records ``completed`` or ``no_show``."""
    require_role(doctor_user, Role.DOCTOR)
    doctor_still_verified(doctor_user)
    now = now or timezone.now()
    appointment = _locked(doctor_user, appointment_id)
    if appointment.status != Status.CONFIRMED or appointment.start > now:
        raise TransitionNotAllowed()
    appointment.status = Status.COMPLETED if outcome == Status.COMPLETED else Status.NO_SHOW
    appointment.save(update_fields=["status", "updated_at"])
    _history(appointment, doctor_user)
    kind = "booking.completed" if appointment.status == Status.COMPLETED else "booking.no_show"
    tell_both(appointment, kind, told_marked)
    return appointment


@transaction.atomic
def appointment_reschedule(
    *,
    user: User,
    appointment_id: Any,
    start: datetime,
    reason: str = "",
    now: datetime | None = None,
) -> Appointment:
    """Move an appointment, by its patient or its doctor, atomically: the new appointment is
    booked and the old one cancelled and linked in one transaction, or nothing changes.

    The move keeps what the old appointment had been granted, no more: a confirmed one stays
    confirmed; a request still awaiting the doctor stays ``pending`` when its patient moves it
    (the doctor moving it is the doctor's answer: ``confirmed``); a slot held for payment
    cannot be moved (it is released and booked again, as the policy of the day says). The
    doctor must still be bookable."""
    require_role(user, Role.PATIENT, Role.DOCTOR)
    now = now or timezone.now()
    # The doctor's profile and both accounts (for share) before the appointment (for update),
    # in the order closing an account or withdrawing a verification takes them.
    seen = selectors.appointment_get(viewer=user, appointment_id=appointment_id)
    bookable = selectors.bookable_doctor(seen.doctor_id, patient_id=seen.patient_id)
    old = _locked(user, appointment_id, seen)
    if old.status not in ACTIVE:
        raise TransitionNotAllowed()
    if old.status == Status.HELD:
        raise HoldNotMovable()
    if bookable is None:
        raise _not_bookable(user, old.patient_id)
    if user.role == Role.PATIENT:
        _check_cutoff(old, now)
    if old.end <= now:  # ended unmarked: not counted, so moving it ahead adds one
        try:
            _check_upcoming_quota(old.patient, old.doctor, now)
        except TooManyUpcoming:
            if user.role == Role.PATIENT:
                raise
            raise TooManyUpcoming(TooManyUpcoming.to_the_doctor) from None
    status = (
        Status.PENDING
        if old.status == Status.PENDING and user.role == Role.PATIENT
        else Status.CONFIRMED
    )
    # Free the old time first, so that moving within an overlapping range is possible.
    old.status = Status.CANCELLED
    old.save(update_fields=["status", "updated_at"])
    _history(old, user, reason or RESCHEDULED)
    schedule = selectors.schedule_of(old.doctor, fresh=True)
    slot = _matching_slot(old.doctor, start, old.mode, old.clinic_id, now, schedule)
    if slot is None:
        if _matching_slot(
            old.doctor, start, old.mode, old.clinic_id, now, schedule, ignore_bookings=True
        ):
            raise SlotTaken()
        raise SlotUnavailable()
    new = Appointment(
        doctor=old.doctor,
        patient=old.patient,
        clinic_id=slot.clinic_id,
        mode=old.mode,
        start=slot.start,
        end=slot.end,
        status=status,
        reason=old.reason,
        paid_at=old.paid_at,  # the payment goes with the appointment it paid for
        rescheduled_from=old,
    )
    new.__dict__["_zone"] = _zone_of_slot(schedule[1], slot)
    _insert(new, now, user)
    _history(new, user, reason or RESCHEDULED)
    tell_both(
        new,
        "booking.rescheduled",
        lambda a, u: (
            _("Appointment moved"),
            _("The appointment is now on %(when)s.") % {"when": when(a)},
        ),
        # The old one was cancelled by the move: no ``booking.cancelled`` is sent for it.
        extra={"rescheduled_from": str(old.id)},
    )
    return new


def appointment_rebook(
    *, patient: User, appointment_id: Any, start: datetime, reason: str = ""
) -> Appointment:
    """A new booking with the same doctor, mode and clinic as one of the patient's past ones."""
    past = selectors.appointment_get(viewer=patient, appointment_id=appointment_id)
    return appointment_book(
        patient=patient,
        doctor_id=past.doctor_id,
        start=start,
        mode=past.mode,
        clinic_id=past.clinic_id,
        reason=reason,
    )
