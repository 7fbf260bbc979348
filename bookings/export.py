"""Bookings' part of the personal-data export (``accounts.selectors.user_export``, wired at
the composition root): a doctor's profile with their booking policy and hours (the
document's "doctor"), appointments and reviews ("bookings"), and where the access log finds
the events about them."""

from __future__ import annotations

from typing import Any

from django.db.models import Q

from accounts.models import User
from bookings.models import (
    Appointment,
    AvailabilityRule,
    CalendarFeed,
    ExtraHours,
    Review,
    StatusChange,
    TimeOff,
)
from bookings.selectors import policy_for
from core.export import AuditTargets, Rows, id_texts, iso
from doctors import export as doctors_export
from doctors.models import DoctorProfile


def _doctor(user: User, rows: Rows) -> DoctorProfile | None:
    """The user's doctor profile, read once per export (both sections need it)."""
    return rows.once(
        "bookings.doctor",
        lambda: (
            DoctorProfile.objects.filter(user=user)
            .select_related("booking_policy")
            .prefetch_related("specialties", "clinics")
            .first()
        ),
    )


def _doctor_ids(user: User, rows: Rows) -> list[Any]:
    """The ids of the user's doctor profile: "mine" as the doctor is by the profile's id (not
    through a join), so that each side of an OR with the patient's side is an index read."""
    doctor = _doctor(user, rows)
    return [doctor.pk] if doctor else []


def doctor_section(user: User, rows: Rows) -> dict[str, Any] | None:
    """A doctor's profile, clinics, booking policy and hours (as the doctor's API shows
    them); None for anyone else."""
    doctor = _doctor(user, rows)
    if doctor is None:
        return None
    policy = policy_for(doctor)
    hours = ("id", "mode", "clinic_id", "start", "end", "slot_minutes", "buffer_minutes")
    rules = AvailabilityRule.objects.filter(doctor=doctor).order_by("weekday", "start", "id")
    extra = ExtraHours.objects.filter(doctor=doctor).order_by("date", "start", "id")
    off = TimeOff.objects.filter(doctor=doctor).order_by("start", "id")
    return {
        "profile": doctors_export.profile_data(user, doctor),
        "clinics": doctors_export.clinics_data(doctor),
        "booking_policy": {
            "min_notice_minutes": policy.min_notice_minutes,
            "window_days": policy.window_days,
            "cancel_cutoff_hours": policy.cancel_cutoff_hours,
            "requires_approval": policy.requires_approval,
            "payment_required": policy.payment_required,
            "hold_minutes": policy.hold_minutes,
        },
        "availability_rules": [
            {**_hours(r, hours), "weekday": r.weekday}
            for r in rows.take("doctor.availability_rules", rules)
        ],
        "extra_hours": [
            {**_hours(e, hours), "date": e.date.isoformat()}
            for e in rows.take("doctor.extra_hours", extra)
        ],
        "time_off": [
            {"id": str(t.id), "start": iso(t.start), "end": iso(t.end), "reason": t.reason}
            for t in rows.take("doctor.time_off", off)
        ],
    }


def _hours(row: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    found = {f: getattr(row, f) for f in fields}
    found.update(
        id=str(row.id),
        clinic_id=str(row.clinic_id) if row.clinic_id else None,
        start=row.start.isoformat(),
        end=row.end.isoformat(),
    )
    return found


def bookings_section(user: User, rows: Rows) -> dict[str, Any]:
    """Appointments as patient or as doctor, each with its status history (as the
    appointment's API shows them), the reviews the user wrote and, for a doctor, the visible
    reviews of them (without their authors, as the public list shows them); and whether the
    user has a calendar feed (when its current URL was made: the URL itself is a secret that
    only its digest is kept of)."""
    doctor_ids = _doctor_ids(user, rows)
    mine = Q(patient=user) | Q(doctor_id__in=doctor_ids)
    appointments = rows.take(
        "bookings.appointments",
        Appointment.objects.filter(mine)
        .select_related("doctor__user", "patient")
        .order_by("start", "id"),
    )
    history: dict[Any, list[dict[str, Any]]] = {}
    for change in rows.take(
        "bookings.history",
        StatusChange.objects.filter(
            Q(appointment__patient=user) | Q(appointment__doctor_id__in=doctor_ids)
        ).order_by("appointment_id", "at", "id"),
    ):
        history.setdefault(change.appointment_id, []).append(
            {"status": change.status, "at": iso(change.at), "reason": change.shown_reason}
        )
    reviews = rows.take(
        "bookings.reviews",
        Review.objects.filter(Q(patient=user) | Q(doctor_id__in=doctor_ids, hidden=False)).order_by(
            "created_at", "id"
        ),
    )
    feed = CalendarFeed.objects.filter(user=user).first()
    return {
        "appointments": [
            {
                "id": str(a.id),
                "doctor_id": str(a.doctor_id),
                "doctor_name": a.doctor.user.full_name,
                "patient_id": str(a.patient_id),
                "patient_name": a.patient.full_name,
                "clinic_id": str(a.clinic_id) if a.clinic_id else None,
                "mode": a.mode,
                "start": iso(a.start),
                "end": iso(a.end),
                "status": a.status,
                "reason": a.reason,
                "hold_expires_at": iso(a.hold_expires_at),
                "created_at": iso(a.created_at),
                "history": history.get(a.id, []),
            }
            for a in appointments
        ],
        "reviews_written": [
            {
                "id": str(r.id),
                "appointment_id": str(r.appointment_id),
                "doctor_id": str(r.doctor_id),
                **_review(r),
                "hidden": r.hidden,
            }
            for r in reviews
            if r.patient_id == user.pk
        ],
        "reviews_received": [
            {"id": str(r.id), **_review(r)} for r in reviews if r.patient_id != user.pk
        ],
        "calendar_feed": None if feed is None else {"created_at": iso(feed.created_at)},
    }


def _review(r: Any) -> dict[str, Any]:
    return {
        "rating": r.rating,
        "text": r.text,
        "reply": r.reply,
        "replied_at": iso(r.replied_at),
        "created_at": iso(r.created_at),
    }


def audit_targets(user: User, rows: Rows) -> AuditTargets:
    """Events about the user's appointments (as patient or doctor) and the reviews they
    wrote (a doctor's hidden reviews are not theirs)."""
    mine = Q(patient=user) | Q(doctor_id__in=_doctor_ids(user, rows))
    return AuditTargets(
        events=[
            Q(target_type="appointment", target_id__in=id_texts(Appointment.objects.filter(mine))),
            Q(
                target_type="review",
                target_id__in=id_texts(Review.objects.filter(patient=user)),
            ),
        ]
    )
