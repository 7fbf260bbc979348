"""Reads of bookings, each knowing its viewer."""

from __future__ import annotations

import functools
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from operator import itemgetter
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from accounts.models import Role, User
from accounts.permissions import require_role
from audit.services import record
from bookings.errors import AppointmentNotFound
from bookings.models import (
    ACTIVE,
    Appointment,
    AvailabilityRule,
    BookingPolicy,
    ExtraHours,
    Status,
    TimeOff,
)
from bookings.slots import Hours, Slot, free_slots
from core import db
from core.cache import best_effort, cache_fill, cache_fill_many, cache_lease, cache_leases
from core.db import db_value, names
from doctors.models import Clinic, DoctorProfile, Mode, Verification


def bookable_doctor(doctor_id: Any, *, patient_id: Any = None) -> DoctorProfile | None:
    """The verified doctor with an active doctor's account that ``doctor_id`` names, with their
    user and their booking policy (none if they have not saved one), or None. One hand-written
    statement: a booking reads it first, and the ORM spent most of that read building the
    query and the instances (``filter(...).select_related("user", "booking_policy")``).

    With ``patient_id`` (a booking or a move, in its transaction) the patient's account must
    be an active patient's too, and on PostgreSQL the doctor's profile, the doctor's account
    and the patient's account stay locked ``FOR SHARE`` until the transaction ends: closing
    either account, changing its role or withdrawing the verification waits for the booking
    to commit, and then cancels it (``bookings.receivers``); a booking that comes second
    waits, then finds nobody to book.
    Unlocked, a booking committed beside an account closing stayed active."""
    read = _bookable_read(connection.vendor, patient_id is not None)
    params = [db_value(DoctorProfile, "id", doctor_id), *read.params]
    if patient_id is not None:
        params += [
            db_value(User, "id", patient_id),
            db_value(User, "is_active", True),
            db_value(User, "role", Role.PATIENT),
        ]
    rows = db.values(read.sql, params, read.fields)
    if not rows:
        return None
    row, start = rows[0], 0
    found: list[Any] = []
    for model, attnames in read.models:
        values = row[start : start + len(attnames)]
        start += len(attnames)
        found.append(
            model.from_db(connection.alias, attnames, values) if values[0] is not None else None
        )
    doctor, user, policy = found
    doctor._state.fields_cache["user"] = user
    doctor._state.fields_cache["booking_policy"] = policy  # None: policy_for's defaults
    return doctor  # type: ignore[no-any-return]


class _BookableRead(NamedTuple):
    sql: str
    params: tuple[Any, ...]  # after the doctor's id: verified, active, a doctor
    fields: tuple[Any, ...]  # of every column, in order
    models: tuple[tuple[Any, list[str]], ...]  # each model and its columns' attnames


@functools.cache
def _bookable_read(vendor: str, for_patient: bool) -> _BookableRead:
    """The statement of :func:`bookable_doctor` and what reading its rows needs, once."""
    models = (DoctorProfile, User, BookingPolicy)
    quote = connection.ops.quote_name
    columns = ", ".join(
        f"{alias}.{quote(str(f.column))}"
        for alias, model in zip("dup", models, strict=True)
        for f in model._meta.concrete_fields
    )
    doctors, doctor_id, doctor_user, verification = names(
        DoctorProfile, "id", "user", "verification"
    )
    users, user_id, is_active, role = names(User, "id", "is_active", "role")
    policies, policy_doctor = names(BookingPolicy, "doctor")
    sql = (
        f"SELECT {columns} FROM {doctors} d "  # noqa: S608 (names from the models)
        f"JOIN {users} u ON u.{user_id} = d.{doctor_user} "
        + (f"JOIN {users} pu ON TRUE " if for_patient else "")
        + f"LEFT JOIN {policies} p ON p.{policy_doctor} = d.{doctor_id} "
        f"WHERE d.{doctor_id} = %s AND d.{verification} = %s AND u.{is_active} = %s "
        f"AND u.{role} = %s"
    )
    if for_patient:
        sql += f" AND pu.{user_id} = %s AND pu.{is_active} = %s AND pu.{role} = %s"
        if vendor == "postgresql":  # SQLite serialises writers instead
            # Locked in this order (PostgreSQL locks a row's tables as the list names them):
            # the accounts before the profile, as erasure and every profile write take them.
            sql += " FOR SHARE OF u, pu, d"
    return _BookableRead(
        sql=sql,
        params=(
            db_value(DoctorProfile, "verification", Verification.VERIFIED),
            db_value(User, "is_active", True),
            db_value(User, "role", Role.DOCTOR),
        ),
        fields=tuple(f for model in models for f in model._meta.concrete_fields),
        models=tuple((m, [f.attname for f in m._meta.concrete_fields]) for m in models),
    )


def policy_for(doctor: DoctorProfile) -> BookingPolicy:
    """The doctor's policy, or the platform defaults (unsaved: a read writes nothing) until
    the doctor saves one; no query when the doctor was read with
    ``select_related("booking_policy")`` or by :func:`bookable_doctor`."""
    try:
        return doctor.booking_policy  # type: ignore[no-any-return]
    except BookingPolicy.DoesNotExist:
        return BookingPolicy(doctor=doctor)


Schedule = tuple[BookingPolicy, list["Hours"]]
SCHEDULE_SECONDS = 300


def schedule_key(doctor_id: Any) -> str:
    return f"bookings:schedule:{doctor_id}"


def schedule_of(doctor: DoctorProfile, *, fresh: bool = False) -> Schedule:
    """The doctor's booking policy and hours. Public reads (slot lists, the directory's
    availability) take them from the cache, which every change to rules, extra hours, the
    policy, a clinic or the profile empties on commit (``bookings/invalidation.py``);
    bookings and reschedules read them ``fresh``, so a booking is never checked against
    stale hours. A fresh read is not written to the cache: a booking changes none of it, and
    the write (a Redis round trip and a pickle, ~4% of a booking's CPU) could put back hours
    that a change committed meanwhile had just emptied.

    A read that misses takes a lease on the key first, then reads the profile, policy and
    hours, and caches them only if the lease is still there (``core.cache.cache_fill``): a
    change that committed meanwhile (its delete voids the lease) is never undone by a read
    that began before it. (Cached as read, such a read put the old hours back for
    ``SCHEDULE_SECONDS``: deleted hours listed, and refused at booking; new ones unseen.)"""
    key = schedule_key(doctor.pk)
    if fresh:
        return (policy_for(doctor), hours_of(doctor))
    found = best_effort(cache.get, key, what="schedule cache")  # Redis away: read as new
    if isinstance(found, tuple):  # else nothing, or another read's lease
        return found  # type: ignore[return-value]
    lease = cache_lease(cache, key)
    if lease is not None:  # read again after the lease: ``doctor`` may predate a change
        doctor = _with_policy([doctor.pk]).get(doctor.pk, doctor)
    schedule = _schedule(doctor, hours_of(doctor))
    if lease is not None:
        cache_fill(cache, key, lease, schedule, SCHEDULE_SECONDS)
    return schedule


def _with_policy(doctor_ids: list[Any]) -> dict[Any, DoctorProfile]:
    """The doctors' profiles as they are now, each with its booking policy (one query)."""
    found = DoctorProfile.objects.filter(pk__in=doctor_ids).select_related("booking_policy")
    return {doctor.pk: doctor for doctor in found}


def _schedule(doctor: DoctorProfile, hours: list[Hours]) -> Schedule:
    policy = policy_for(doctor)
    policy._state.fields_cache.clear()  # the cache keeps the policy's fields, not its doctor
    return (policy, hours)


def hours_of(doctor: DoctorProfile, *, every_mode: bool = False) -> list[Hours]:
    """Every source of bookable hours of the doctor: weekly rules and one-off extra hours
    (one hand-written statement: a booking reads them fresh, and the ORM spent several times
    the database's time building the query), each in its clinic's zone, or the doctor's
    without a clinic; only in the modes the doctor's profile offers, unless ``every_mode``
    (the overlap check: hours in a mode turned off come back when it is turned on)."""
    sql, fields = _hours_sql(connection.vendor)
    doctor_id = db_value(AvailabilityRule, "doctor", doctor.pk)
    since = db_value(ExtraHours, "date", _hours_since())
    return _hours(doctor, db.values(sql, [doctor_id, doctor_id, since], fields), every_mode)


def _hours_since() -> date:
    """One-off hours of days gone offer nothing (two days back: every zone's today is in)."""
    return timezone.now().date() - timedelta(days=2)


def _hours(doctor: DoctorProfile, rows: Iterable[Sequence[Any]], every_mode: bool) -> list[Hours]:
    """A doctor's hours from their rows ``(start, end, slot minutes, buffer minutes, mode,
    clinic id, clinic zone, weekday, date)``, in :func:`hours_of`'s order."""
    offered = set(Mode.values) if every_mode else doctor.modes
    found = [
        Hours(
            zone=ZoneInfo(zone or doctor.time_zone),
            start=start,
            end=end,
            slot_minutes=slot,
            buffer_minutes=buffer,
            mode=mode,
            clinic_id=clinic_id,
            weekday=weekday,
            on_date=on_date,
        )
        for start, end, slot, buffer, mode, clinic_id, zone, weekday, on_date in rows
        if mode in offered  # hours in a mode the profile no longer offers are not bookable
    ]
    # A fixed order (rules, then extra hours), because where two sources offer slots that
    # start at the same instant, the first source's slot is the one kept.
    found.sort(
        key=lambda h: (
            h.on_date is not None,
            h.weekday or 0,
            h.on_date or date.min,
            h.start,
            h.end,
            h.mode,
            str(h.clinic_id),
        )
    )
    return found


_HOURS_FIELDS = ("start", "end", "slot_minutes", "buffer_minutes", "mode", "clinic")


@functools.cache
def _hours_sql(vendor: str) -> tuple[str, tuple[Any, ...]]:
    """The weekly rules and the extra hours from a date on, with their clinics' zones, in one
    ``UNION ALL``, and the fields that convert its columns."""
    clinics, clinic_id, zone = names(Clinic, "id", "time_zone")
    parts = []
    for model, own in ((AvailabilityRule, "weekday"), (ExtraHours, "date")):
        table, doctor, *columns = names(model, "doctor", *_HOURS_FIELDS, own)
        weekday, on_date = (
            (f"s.{columns[-1]}", "NULL") if own == "weekday" else ("NULL", f"s.{columns[-1]}")
        )
        common = ", ".join(f"s.{c}" for c in columns[:-1])
        parts.append(
            f"SELECT {common}, c.{zone}, {weekday}, {on_date} FROM {table} s "  # noqa: S608 (names from the models)
            f"LEFT JOIN {clinics} c ON c.{clinic_id} = s.{columns[5]} WHERE s.{doctor} = %s"
            + ("" if own == "weekday" else f" AND s.{columns[-1]} >= %s")
        )
    fields = (
        *(AvailabilityRule._meta.get_field(f) for f in _HOURS_FIELDS),
        Clinic._meta.get_field("time_zone"),
        AvailabilityRule._meta.get_field("weekday"),
        ExtraHours._meta.get_field("date"),
    )
    return " UNION ALL ".join(parts), fields


def busy_of(
    doctor: DoctorProfile,
    start: datetime,
    end: datetime,
    *,
    now: datetime,
    margin: timedelta,
    appointments: bool = True,
) -> list[tuple[datetime, datetime]]:
    """The doctor's time off and, with ``appointments``, their active appointments meeting
    ``[start - margin, end)`` (a hold past its expiry no longer blocks anything; :func:`holding`
    states the same rule as a queryset): one hand-written statement, read for every slot list
    and every booking. Time off takes the margin too: the slots after it keep their buffer
    (``free_slots``), so time off ending just before the window takes its first slots, as
    the booking of such a slot (its window starts earlier) finds."""
    sql, fields = _busy_sql(connection.vendor, appointments)
    doctor_id = db_value(TimeOff, "doctor", doctor.pk)
    at = functools.partial(db_value, Appointment, "start")
    params = [doctor_id, at(start - margin), at(end)]
    if appointments:
        params += [doctor_id, at(start - margin), at(end), *ACTIVE, Status.HELD, at(now)]
    return db.values(sql, params, fields)


@functools.cache
def _busy_sql(vendor: str, with_appointments: bool) -> tuple[str, tuple[Any, ...]]:
    off, off_doctor, off_start, off_end = names(TimeOff, "doctor", "start", "end")
    sql = (
        f"SELECT {off_start}, {off_end} FROM {off} "  # noqa: S608 (names from the models)
        f"WHERE {off_doctor} = %s AND {off_end} > %s AND {off_start} < %s"
    )
    if with_appointments:
        table, doctor, start, end, status, hold = names(
            Appointment, "doctor", "start", "end", "status", "hold_expires_at"
        )
        sql += (
            f" UNION ALL SELECT {start}, {end} FROM {table} "  # noqa: S608
            f"WHERE {doctor} = %s AND {end} > %s AND {start} < %s "
            f"AND {status} IN ({', '.join(['%s'] * len(ACTIVE))}) "
            f"AND NOT ({status} = %s AND {hold} IS NOT NULL AND {hold} <= %s)"
        )
    return sql, (TimeOff._meta.get_field("start"), TimeOff._meta.get_field("end"))


def holding(qs: QuerySet[Appointment], now: datetime) -> QuerySet[Appointment]:
    """Active appointments; a hold past its expiry no longer blocks anything."""
    return qs.filter(status__in=ACTIVE).exclude(status=Status.HELD, hold_expires_at__lte=now)


def doctor_slots(
    *,
    doctor: DoctorProfile,
    start: datetime,
    end: datetime,
    now: datetime | None = None,
    schedule: Schedule | None = None,
    ignore_bookings: bool = False,
) -> list[Slot]:
    """Free slots starting in ``[start, end)``, worked out from :func:`lookback` before
    ``start`` (busy time is read from there, and up to the end of the last of them:
    :func:`_reach`). With ``ignore_bookings`` the doctor's appointments are
    not subtracted: the slots the doctor offers at all (to tell "taken" from "never free").
    Without a ``schedule`` the cached one is used (see :func:`schedule_of`). A booking checks
    its slot here too (a window of a minute), so the list and the booking agree."""
    now = now or timezone.now()
    policy, hours = schedule or schedule_of(doctor)
    busy = busy_of(
        doctor,
        start - lookback(hours),
        end + _reach(hours),
        now=now,
        margin=_margin(hours),
        appointments=not ignore_bookings,
    )
    return _slots((policy, hours), start, end, busy, now)


CLOCK_CHANGE_MAX = timedelta(hours=2)  # the most a clock goes forward (Antarctica/Troll's)


def lookback(hours: list[Hours]) -> timedelta:
    """How long before a window its slots are worked out from, then left out (a clock change
    and the longest slot). Where two slots meet, ``free_slots`` keeps the earlier: across a
    clock change going forward by a time that slot and buffer do not divide, the last slot
    before the gap runs into the first after it, and may start before the window. Worked
    out from the window's start only, a list starting between the two offered the later
    one, which a booking (its window starting well before the slot) then refused. The list,
    the directory and the booking all take it from here (:func:`_slots`), so which slot
    wins never depends on where a window starts."""
    return CLOCK_CHANGE_MAX + _reach(hours)


def _margin(hours: list[Hours]) -> timedelta:
    """How long before a window an appointment or time off may still take slots in it (the
    buffer after it)."""
    return timedelta(minutes=max([h.buffer_minutes for h in hours] or [0]))


def _reach(hours: list[Hours]) -> timedelta:
    """How far past a window's end a slot starting in it may run (the longest slot): busy
    time starting there still takes that slot, so it is read too. ``end`` bounds where slots
    start, not what they meet: read up to it only, time off beginning partway through the
    last slots went unseen, and they were listed and booked. (A buffer keeps time after busy
    time, never before it: a slot ending as busy time starts is free.)"""
    return timedelta(minutes=max([h.slot_minutes for h in hours] or [0]))


def _slots(
    schedule: Schedule,
    start: datetime,
    end: datetime,
    busy: Iterable[tuple[datetime, datetime]],
    now: datetime,
) -> list[Slot]:
    """Free slots starting in ``[start, end)``: worked out from :func:`lookback` before
    ``start`` (``busy`` must reach back there too), those starting before it left out."""
    policy, hours = schedule
    found = free_slots(
        hours=hours,
        start=start - lookback(hours),
        end=end,
        busy=busy,
        not_before=now + timedelta(minutes=policy.min_notice_minutes),
        not_after=now + timedelta(days=policy.window_days),
    )
    return found[bisect_left(found, start, key=itemgetter(0)) :]


def visible_to(viewer: User) -> Q:
    if viewer.role == Role.PATIENT:
        return Q(patient=viewer)
    if viewer.role == Role.DOCTOR:
        return Q(doctor__user=viewer)
    from accounts.permissions import has_permission

    return Q() if has_permission(viewer, "bookings.view_appointment") else Q(pk__in=[])


def appointment_list(
    *, viewer: User, scope: str = "upcoming", status: str = ""
) -> QuerySet[Appointment]:
    qs = Appointment.objects.filter(visible_to(viewer)).select_related(
        "doctor__user", "patient", "clinic"
    )
    now = timezone.now()
    qs = (
        qs.filter(end__gt=now).order_by("start", "id")
        if scope == "upcoming"
        else qs.filter(end__lte=now).order_by("-start", "-id")
    )
    return qs.filter(status=status) if status else qs


def appointment_get(*, viewer: User, appointment_id: Any) -> Appointment:
    found = (
        Appointment.objects.filter(visible_to(viewer), pk=appointment_id)
        .select_related("doctor__user", "patient", "clinic")
        .prefetch_related("history")
        .first()
    )
    if found is None:
        raise AppointmentNotFound()
    return found


def reasons_shown(viewer: User) -> bool:
    """Whether lists and dashboards show ``viewer`` the reasons of appointments (protected
    health information): to the appointment's patient and doctor. Staff, who see every
    appointment, read a reason one appointment at a time, audited
    (:func:`appointment_detail`)."""
    return viewer.role in (Role.PATIENT, Role.DOCTOR)


def appointment_detail(
    *, viewer: User, appointment_id: Any, ip: str | None = None, user_agent: str = ""
) -> Appointment:
    """One appointment with its history, reasons included. Staff reading it is recorded in
    the audit trail (``appointment.viewed_by_staff``: the appointment's id, never its
    reason); its parties' reads are not."""
    appointment = appointment_get(viewer=viewer, appointment_id=appointment_id)
    if not reasons_shown(viewer):
        record(
            action="appointment.viewed_by_staff",
            actor_id=viewer.pk,
            actor_role=viewer.role,
            target_type="appointment",
            target_id=str(appointment.pk),
            ip=ip,
            user_agent=user_agent,
            data={"patient_id": str(appointment.patient_id)},
        )
    return appointment


def in_care(*, doctor_user: Any, patient: Any, now: datetime | None = None) -> bool:
    """The one answer to "are this doctor and this patient in care together?": a confirmed
    or completed appointment, upcoming or ended less than ``CARE_RELATIONSHIP_DAYS`` ago,
    with a doctor still verified (one whose verification is withdrawn sees nobody's files
    and chats with nobody, whatever they saw before), whose account is still an active
    doctor's (an admin may change a role), with a patient whose account is active (an
    account closed or erased, ``deleted_at``, is inactive: nobody chats with it) and still a
    patient's (an account made staff is nobody's patient any more: no chat, typing, unread
    counts, presence or files reach it through care).
    Chat, records and presence ask this; nobody re-implements it. The two are users or their
    ids.

    Chat asks it for every message sent, so it is one hand-written statement: the ORM spent
    about five times the database's time building the same query. :func:`_in_care` states the
    rule as a queryset for the lists; a test holds the two to the same answers."""
    with connection.cursor() as cursor:
        cursor.execute(
            _in_care_sql(connection.vendor),
            [
                db_value(DoctorProfile, "user", getattr(doctor_user, "pk", doctor_user)),
                db_value(Appointment, "patient", getattr(patient, "pk", patient)),
                *_CARE_STATUSES,
                db_value(Appointment, "end", _care_since(now)),
                db_value(DoctorProfile, "verification", Verification.VERIFIED),
                db_value(User, "role", Role.DOCTOR),
                db_value(User, "is_active", True),
                db_value(User, "is_active", True),
                db_value(User, "role", Role.PATIENT),
            ],
        )
        return cursor.fetchone() is not None


_CARE_STATUSES = (Status.CONFIRMED.value, Status.COMPLETED.value)


@functools.cache
def _in_care_sql(vendor: str) -> str:
    appointments, doctor, patient, status, end = names(
        Appointment, "doctor", "patient", "status", "end"
    )
    profiles, profile_id, user, verification = names(DoctorProfile, "id", "user", "verification")
    users, user_id, role, is_active = names(User, "id", "role", "is_active")
    return (
        f"SELECT 1 FROM {appointments} a JOIN {profiles} d ON d.{profile_id} = a.{doctor} "  # noqa: S608 (names from the models)
        f"JOIN {users} du ON du.{user_id} = d.{user} "
        f"JOIN {users} pu ON pu.{user_id} = a.{patient} "
        f"WHERE d.{user} = %s AND a.{patient} = %s AND a.{status} IN (%s, %s) AND a.{end} >= %s "
        f"AND d.{verification} = %s AND du.{role} = %s AND du.{is_active} = %s "
        f"AND pu.{is_active} = %s AND pu.{role} = %s LIMIT 1"
    )


def _care_since(now: datetime | None) -> datetime:
    return (now or timezone.now()) - timedelta(days=getattr(settings, "CARE_RELATIONSHIP_DAYS", 90))


def _in_care(now: datetime | None) -> QuerySet[Appointment]:
    return Appointment.objects.filter(
        status__in=_CARE_STATUSES,
        end__gte=_care_since(now),
        doctor__verification=Verification.VERIFIED,
        doctor__user__role=Role.DOCTOR,
        doctor__user__is_active=True,
        patient__is_active=True,
        patient__role=Role.PATIENT,
    )


def care_partner_ids(user_id: Any, now: datetime | None = None) -> list[Any]:
    """Everyone in care with this user (by :func:`in_care`'s rule): a doctor's patients, a
    patient's doctors. Presence is shared between them."""
    qs = _in_care(now)
    patients = qs.filter(doctor__user_id=user_id).values_list("patient_id", flat=True)
    doctors = qs.filter(patient_id=user_id).values_list("doctor__user_id", flat=True)
    return sorted(set(patients) | set(doctors), key=str)


def dashboard(*, viewer: User, now: datetime | None = None) -> dict[str, Any]:
    """Role-specific summary: a patient's next appointments; a doctor's day, pending requests
    and the week's figures (days counted in the doctor's :func:`home_zone`)."""
    now = now or timezone.now()
    mine = Appointment.objects.filter(visible_to(viewer)).select_related(
        "doctor__user", "patient", "clinic"
    )
    upcoming = list(holding(mine.filter(end__gt=now), now).order_by("start")[:5])
    if viewer.role != Role.DOCTOR:
        return {"role": viewer.role, "next": upcoming}
    profile = DoctorProfile.objects.filter(user=viewer).prefetch_related("clinics").first()
    zone = home_zone(profile) if profile else ZoneInfo(viewer.time_zone)
    today = now.astimezone(zone).date()
    day_start = datetime.combine(today, datetime.min.time(), tzinfo=zone)
    week_start = day_start - timedelta(days=today.weekday())
    week = mine.filter(start__gte=week_start, start__lt=week_start + timedelta(days=7))
    counts: dict[str, int] = {
        str(s): 0 for s in (Status.CONFIRMED, Status.COMPLETED, Status.NO_SHOW, Status.CANCELLED)
    }
    # Neither a moved appointment (cancelled, with a successor) nor a hold never paid (one
    # that ran out or that its patient dropped) is a visit called off.
    moved = Exists(Appointment.objects.filter(rescheduled_from=OuterRef("pk")))
    week = week.exclude(Q(status=Status.CANCELLED) & (moved | Q(hold_expires_at__isnull=False)))
    for status in week.filter(status__in=list(counts)).values_list("status", flat=True):
        counts[status] += 1
    return {
        "role": viewer.role,
        "next": upcoming,
        "today": list(
            mine.filter(
                start__gte=day_start,
                start__lt=day_start + timedelta(days=1),
                status__in=[*ACTIVE, Status.COMPLETED, Status.NO_SHOW],
            )
            .exclude(status=Status.HELD, hold_expires_at__lte=now)
            .order_by("start")
        ),
        "pending_requests": mine.filter(status=Status.PENDING, end__gt=now).count(),
        "week": counts,
    }


def home_zone(doctor: DoctorProfile) -> ZoneInfo:
    """The zone a doctor's days are counted in where no other is asked for: their first
    clinic's (by id: a fixed choice), or their profile's."""
    clinic = min(doctor.clinics.all(), key=lambda c: str(c.pk), default=None)
    return ZoneInfo(clinic.time_zone if clinic else doctor.time_zone)


def first_free_slots(
    doctor_ids: list[Any], on_date: Any, now: datetime, mode: str = ""
) -> dict[Any, datetime]:
    """For the directory: each doctor's first free slot (in ``mode`` when given) on
    ``on_date`` (in the doctor's :func:`home_zone`), or within the next 14 days without a
    date. The schedules and busy times of the whole batch are read at once (a fixed number
    of queries, whatever the number of doctors), the slots worked out as
    :func:`doctor_slots` does."""
    found: dict[Any, datetime] = {}
    first_day = (on_date or now.date()) - timedelta(days=1)  # a day early: zones differ
    with_hours = list(
        DoctorProfile.objects.filter(id__in=doctor_ids)
        .filter(
            Exists(AvailabilityRule.objects.filter(doctor=OuterRef("pk")))
            | Exists(ExtraHours.objects.filter(doctor=OuterRef("pk"), date__gte=first_day))
        )
        .prefetch_related("clinics")
    )  # one query leaves out the doctors with no hours at all: no slots worked out for them
    if not with_hours:
        return found
    schedules = _schedules_of(with_hours)
    windows = {}
    for doctor in with_hours:
        if on_date is not None:
            start = datetime.combine(on_date, datetime.min.time(), tzinfo=home_zone(doctor))
            windows[doctor.pk] = (start, start + timedelta(days=1))
        else:
            windows[doctor.pk] = (now, now + timedelta(days=14))
    busy = _busy_of_many(schedules, windows, now)
    for doctor in with_hours:
        start, end = windows[doctor.pk]
        slots = _slots(schedules[doctor.pk], start, end, busy.get(doctor.pk, []), now)
        first = next((s for s in slots if not mode or s.mode == mode), None)
        if first is not None:
            found[doctor.id] = first.start
    return found


def _schedules_of(doctors: list[DoctorProfile]) -> dict[Any, Schedule]:
    """:func:`schedule_of` for many doctors: the cached ones in one round trip, the others
    in three queries (profiles with policies, rules, extra hours) read after their leases
    (one round trip), then cached where the lease held (one round trip; see
    :func:`schedule_of`)."""
    keys = {schedule_key(d.pk): d for d in doctors}
    cached = best_effort(cache.get_many, list(keys), what="schedule cache") or {}
    schedules = {
        keys[key].pk: schedule for key, schedule in cached.items() if isinstance(schedule, tuple)
    }
    missing = [d for d in doctors if d.pk not in schedules]
    if not missing:
        return schedules
    leases = cache_leases(cache, [schedule_key(d.pk) for d in missing])  # one round trip
    # Read again after the leases: the profiles and policies read before may predate a
    # change; a schedule with no lease (Redis away, another read's) is not cached anyway.
    now_read = _with_policy([d.pk for d in missing if leases[schedule_key(d.pk)]])
    missing = [now_read.get(d.pk, d) for d in missing]
    rows: dict[Any, list[tuple[Any, ...]]] = {d.pk: [] for d in missing}
    common = ("start", "end", "slot_minutes", "buffer_minutes", "mode", "clinic_id")
    zone = "clinic__time_zone"
    for doctor_id, *row in AvailabilityRule.objects.filter(doctor__in=missing).values_list(
        "doctor_id", *common, zone, "weekday"
    ):
        rows[doctor_id].append((*row, None))
    for doctor_id, *row in ExtraHours.objects.filter(
        doctor__in=missing, date__gte=_hours_since()
    ).values_list("doctor_id", *common, zone, "date"):
        rows[doctor_id].append((*row[:-1], None, row[-1]))
    fills = {}
    for doctor in missing:
        schedule = _schedule(doctor, _hours(doctor, rows[doctor.pk], every_mode=False))
        schedules[doctor.pk] = schedule
        lease = leases[schedule_key(doctor.pk)]
        if lease is not None:
            fills[schedule_key(doctor.pk)] = (lease, schedule)
    cache_fill_many(cache, fills, SCHEDULE_SECONDS)  # one round trip
    return schedules


def _busy_of_many(
    schedules: dict[Any, Schedule],
    windows: dict[Any, tuple[datetime, datetime]],
    now: datetime,
) -> dict[Any, list[tuple[datetime, datetime]]]:
    """:func:`busy_of` for many doctors, each in their own window (from :func:`lookback`
    before it), margin and reach (as :func:`doctor_slots` reads it): two queries over the
    span of all the windows, sorted out here."""
    spans = {
        pk: (
            start - lookback(schedules[pk][1]) - _margin(schedules[pk][1]),
            end + _reach(schedules[pk][1]),
        )
        for pk, (start, end) in windows.items()
    }
    low = min(start for start, _ in spans.values())
    high = max(end for _, end in spans.values())
    busy: dict[Any, list[tuple[datetime, datetime]]] = {}
    off = TimeOff.objects.filter(doctor_id__in=list(windows), end__gt=low, start__lt=high)
    booked = holding(
        Appointment.objects.filter(doctor_id__in=list(windows), end__gt=low, start__lt=high), now
    )
    for rows in (off, booked):
        for doctor_id, start, end in rows.values_list("doctor_id", "start", "end"):
            span_start, span_end = spans[doctor_id]
            if end > span_start and start < span_end:
                busy.setdefault(doctor_id, []).append((start, end))
    return busy


def own_rules(user: User) -> QuerySet[AvailabilityRule]:
    """A doctor's weekly hours, by day and time (at most ``services.MAX_RULES``)."""
    require_role(user, Role.DOCTOR)
    return AvailabilityRule.objects.filter(doctor__user=user).order_by("weekday", "start")


def own_extra_hours(user: User, today: date) -> QuerySet[ExtraHours]:
    """A doctor's one-off hours from yesterday on (zones differ), for paging by date."""
    require_role(user, Role.DOCTOR)
    return ExtraHours.objects.filter(doctor__user=user, date__gte=today - timedelta(days=1))


def own_time_off(user: User, now: datetime) -> QuerySet[TimeOff]:
    """A doctor's time off not yet over, for paging by start."""
    require_role(user, Role.DOCTOR)
    return TimeOff.objects.filter(doctor__user=user, end__gt=now)
