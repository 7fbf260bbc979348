"""Every read of accounts that someone sees, with the viewer's access enforced."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import Invitation, PatientProfile, User
from accounts.permissions import require_permission
from core.errors import NotFound


def invitation_usable(*, code: str, email: str = "") -> Invitation | None:
    from accounts.services import hash_code

    invitation = Invitation.objects.filter(
        code_hash=hash_code(code), used_by__isnull=True, expires_at__gt=timezone.now()
    ).first()
    if invitation is None or (invitation.email and invitation.email != email.strip().lower()):
        return None
    return invitation


def user_list(
    *, viewer: User, q: str = "", role: str = "", is_active: bool | None = None
) -> QuerySet[User]:
    require_permission(viewer, "accounts.view_user")
    qs = User.objects.all()
    if q:
        qs = qs.filter(
            Q(email__icontains=q)
            | Q(phone__icontains=q)
            | Q(first_name__icontains=q)
            | Q(last_name__icontains=q)
        )
    if role:
        qs = qs.filter(role=role)
    if is_active is not None:
        qs = qs.filter(is_active=is_active)
    return qs


def user_get(*, viewer: User, user_id: Any) -> User:
    require_permission(viewer, "accounts.view_user")
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise NotFound()
    return user


def patient_profile(*, user: User) -> PatientProfile | None:
    return PatientProfile.objects.filter(user=user).first()


# --- the personal-data export (GDPR art. 15/20) -------------------------------------------
# The export is the one read of accounts that gathers every app's rows about a person, so it
# imports them inside the functions (apps above accounts: never at import time). Each list is
# one query whatever its length (no query per row) and bounded at EXPORT_MAX_ROWS rows; a
# list cut there is named in the document's "truncated", never cut silently.
EXPORT_MAX_ROWS = 50_000


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class _Rows:
    """The export's reads, each bounded, and which of them reached the bound."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.truncated: dict[str, bool] = {}

    def take(self, name: str, qs: QuerySet[Any]) -> list[Any]:
        found = list(qs[: self.limit + 1])
        self.truncated[name] = len(found) > self.limit
        return found[: self.limit]


def _id_texts(qs: QuerySet[Any]) -> QuerySet[Any]:
    """The ids of ``qs`` as text, as the audit trail names its targets (``str(uuid)``): a
    subquery, so the export never sends a list of thousands of ids."""
    from django.db import connection
    from django.db.models import CharField, Value
    from django.db.models.functions import Cast, Concat, Substr

    if connection.vendor == "postgresql":
        return qs.values(id_text=Cast("pk", CharField()))
    # SQLite stores a UUID as 32 hex digits: put the dashes of str(uuid) back in.
    parts: list[Any] = []
    for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12)):
        parts += [Value("-"), Substr(Cast("pk", CharField()), start, length)]
    return qs.values(id_text=Concat(*parts[1:], output_field=CharField()))


def user_export(*, user: User) -> dict[str, Any]:
    """The user's personal data (GDPR art. 15/20): their account and profile, what they did
    in every app (appointments, reviews, chats, medical files' details, grants,
    notifications, a doctor's profile and hours), their own audit trail and who else did
    something to their data. Of other people, only what the user already sees in the app
    (a name on an appointment or a chat): nobody else's contact details, files or activity.
    A fixed number of queries, whatever the number of rows."""
    from allauth.account.models import EmailAddress
    from allauth.socialaccount.models import SocialAccount

    from audit.selectors import event_search
    from doctors.models import DoctorProfile

    rows = _Rows(EXPORT_MAX_ROWS)
    profile = patient_profile(user=user)
    doctor = (
        DoctorProfile.objects.filter(user=user)
        .select_related("booking_policy")
        .prefetch_related("specialties", "clinics")
        .first()
    )
    # "Mine": as the patient, or as the doctor by the profile's id (not through a join), so
    # that each side of the OR is an index read.
    doctor_ids = [doctor.pk] if doctor else []
    records = _records_export(user, rows)
    return {
        "account": {
            "id": str(user.id),
            "email": user.email,
            "phone": user.phone,
            "phone_verified": user.phone_verified,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "role": user.role,
            "language": user.language,
            "time_zone": user.time_zone,
            "date_joined": user.date_joined.isoformat(),
            "last_login": user.last_login.isoformat() if user.last_login else None,
        },
        "patient_profile": None
        if profile is None
        else {
            "date_of_birth": profile.date_of_birth,
            "sex": profile.sex,
            "city": profile.city,
            "latitude": profile.latitude,
            "longitude": profile.longitude,
        },
        "email_addresses": [
            {"email": a.email, "verified": a.verified, "primary": a.primary}
            for a in EmailAddress.objects.filter(user=user)
        ],
        "linked_providers": [
            {"provider": s.provider, "uid": s.uid} for s in SocialAccount.objects.filter(user=user)
        ],
        "doctor": None if doctor is None else _doctor_export(user, doctor, rows),
        "bookings": _bookings_export(user, doctor_ids, rows),
        "chat": _chat_export(user, rows),
        "records": records,
        "realtime": _realtime_export(user, rows),
        "activity": [
            {"time": e.created_at.isoformat(), "action": e.action, "ip": e.ip}
            for e in rows.take("activity", event_search(actor_id=user.id))
        ],
        "access_log": _access_log(user, doctor_ids, rows, {r["id"] for r in records["files"]}),
        "truncated": rows.truncated,
        "row_limit": rows.limit,
        "exported_at": timezone.now().isoformat(),
    }


def _doctor_export(user: User, doctor: Any, rows: _Rows) -> dict[str, Any]:
    """A doctor's profile, clinics, booking policy and hours (as the doctor's API shows
    them)."""
    from django.utils.translation import get_language

    from bookings.models import AvailabilityRule, ExtraHours, TimeOff
    from bookings.selectors import policy_for
    from core import money

    language = get_language() or "en"
    policy = policy_for(doctor)
    hours = ("id", "mode", "clinic_id", "start", "end", "slot_minutes", "buffer_minutes")
    rules = AvailabilityRule.objects.filter(doctor=doctor).order_by("weekday", "start", "id")
    extra = ExtraHours.objects.filter(doctor=doctor).order_by("date", "start", "id")
    off = TimeOff.objects.filter(doctor=doctor).order_by("start", "id")
    return {
        "profile": {
            "id": str(doctor.id),
            "name": user.full_name,
            "designation": doctor.designation,
            "bio_en": doctor.bio_en,
            "bio_ar": doctor.bio_ar,
            "specialties": [
                {"code": s.code, "name": s.name(language)} for s in doctor.specialties.all()
            ],
            "languages": doctor.language_codes,
            "fee": {
                "amount": money.amount(doctor.fee_minor, doctor.currency),
                "currency": doctor.currency,
            },
            "modes": doctor.modes,
            "years_experience": doctor.years_experience,
            "rating": doctor.rating,
            "rating_count": doctor.rating_count,
            "time_zone": doctor.time_zone,
            "verification": doctor.verification,
            "verification_reason": doctor.verification_reason,
            "verified_at": _iso(doctor.verified_at),
        },
        "clinics": [
            {
                "id": str(c.id),
                "name": c.name,
                "address": c.address,
                "city": c.city,
                "country": c.country,
                "latitude": c.latitude,
                "longitude": c.longitude,
                "time_zone": c.time_zone,
            }
            for c in sorted(doctor.clinics.all(), key=lambda c: str(c.pk))
        ],
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
            {"id": str(t.id), "start": _iso(t.start), "end": _iso(t.end), "reason": t.reason}
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


def _bookings_export(user: User, doctor_ids: list[Any], rows: _Rows) -> dict[str, Any]:
    """Appointments as patient or as doctor, each with its status history (as the
    appointment's API shows them), the reviews the user wrote and, for a doctor, the visible
    reviews of them (without their authors, as the public list shows them)."""
    from bookings.models import Appointment, Review, StatusChange

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
            {"status": change.status, "at": _iso(change.at), "reason": change.shown_reason}
        )
    reviews = rows.take(
        "bookings.reviews",
        Review.objects.filter(Q(patient=user) | Q(doctor_id__in=doctor_ids, hidden=False)).order_by(
            "created_at", "id"
        ),
    )
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
                "start": _iso(a.start),
                "end": _iso(a.end),
                "status": a.status,
                "reason": a.reason,
                "hold_expires_at": _iso(a.hold_expires_at),
                "created_at": _iso(a.created_at),
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
    }


def _review(r: Any) -> dict[str, Any]:
    return {
        "rating": r.rating,
        "text": r.text,
        "reply": r.reply,
        "replied_at": _iso(r.replied_at),
        "created_at": _iso(r.created_at),
    }


def _chat_export(user: User, rows: _Rows) -> dict[str, Any]:
    """The user's conversations and every message in them (decrypted, as the chat API shows
    them; attachments as the records' ids)."""
    from chat.models import Conversation, Message
    from chat.selectors import message_data, participating

    conversations = rows.take(
        "chat.conversations",
        Conversation.objects.filter(participating(user))
        .select_related("patient", "doctor")
        .order_by("created_at", "id"),
    )
    messages: dict[Any, list[dict[str, Any]]] = {}
    for m in rows.take(
        "chat.messages",
        Message.objects.filter(
            Q(conversation__patient=user) | Q(conversation__doctor=user)
        ).order_by("conversation_id", "seq"),
    ):
        messages.setdefault(m.conversation_id, []).append(message_data(m))
    found = []
    for c in conversations:
        mine, other = ("patient", "doctor") if c.patient_id == user.pk else ("doctor", "patient")
        found.append(
            {
                "id": str(c.id),
                "patient": {"id": str(c.patient_id), "name": c.patient.full_name},
                "doctor": {"id": str(c.doctor_id), "name": c.doctor.full_name},
                "closed": c.closed_at is not None,
                "closed_at": _iso(c.closed_at),
                "created_at": _iso(c.created_at),
                "last_activity_at": _iso(c.last_activity_at),
                "last_seq": c.last_seq,
                "read_seq": getattr(c, f"{mine}_read_seq"),
                "other_read_seq": getattr(c, f"{other}_read_seq"),
                "messages": messages.get(c.id, []),
            }
        )
    return {"conversations": found}


def _records_export(user: User, rows: _Rows) -> dict[str, Any]:
    """The details of the user's medical files (never their contents; deleted ones too, with
    when), the grants they gave or were given, and the staff break-glass accesses to their
    files: who, when, why."""
    from records.models import AccessGrant, BreakGlassAccess, MedicalRecord

    files = rows.take(
        "records.files", MedicalRecord.objects.filter(patient=user).order_by("created_at", "id")
    )
    fields = ("id", "record_id", "record__patient_id", "doctor_id", "created_at", "revoked_at")
    grants = rows.take(
        "records.grants",
        AccessGrant.objects.filter(record__patient=user)
        .values(*fields)
        .union(AccessGrant.objects.filter(doctor=user).values(*fields))  # two index reads
        .order_by("created_at", "id"),
    )
    accesses = rows.take(
        "records.break_glass",
        BreakGlassAccess.objects.filter(patient=user).order_by("created_at", "id"),
    )
    return {
        "files": [
            {
                "id": str(r.id),
                "patient_id": str(r.patient_id),
                "uploaded_by_id": str(r.uploaded_by_id),
                "category": r.category,
                "title": r.title,
                "notes": r.notes,
                "record_date": _iso(r.record_date),
                "file_name": r.file_name,
                "content_type": r.content_type,
                "size": r.size,
                "sha256": r.sha256,
                "status": r.status,
                "signature": r.signature,
                "created_at": _iso(r.created_at),
                "scanned_at": _iso(r.scanned_at),
                "deleted_at": _iso(r.deleted_at),
            }
            for r in files
        ],
        "grants": [
            {
                "id": str(g["id"]),
                "record_id": str(g["record_id"]),
                "patient_id": str(g["record__patient_id"]),
                "doctor_id": str(g["doctor_id"]),
                "created_at": _iso(g["created_at"]),
                "revoked_at": _iso(g["revoked_at"]),
            }
            for g in grants
        ],
        "break_glass": [
            {
                "id": str(b.id),
                "staff_id": str(b.staff_id),
                "reason": b.reason,
                "created_at": _iso(b.created_at),
                "expires_at": _iso(b.expires_at),
            }
            for b in accesses
        ],
    }


def _realtime_export(user: User, rows: _Rows) -> dict[str, Any]:
    """The user's notifications and delivery preferences (as their API shows them)."""
    from realtime.deliveries import preferences_for
    from realtime.models import Notification

    notifications = rows.take(
        "realtime.notifications", Notification.objects.filter(user=user).order_by("seq")
    )
    return {
        "notifications": [
            {
                "id": n.seq,
                "kind": n.kind,
                "title": n.title,
                "body": n.body,
                "data": n.data,
                "created_at": _iso(n.created_at),
                "read_at": _iso(n.read_at),
            }
            for n in notifications
        ],
        "delivery_preferences": preferences_for(user=user),
    }


def _access_log(
    user: User, doctor_ids: list[Any], rows: _Rows, own_record_ids: set[str]
) -> list[dict[str, Any]]:
    """Who else did something to the user's data (the audit events of others, or of the
    platform, whose target is the user, their doctor's profile, their files, chats,
    appointments or reviews), newest first: who (id and role), when, what. Not the others'
    addresses or devices. One query: a UNION ALL of one indexed read per kind of target."""
    from audit.models import AuditEvent
    from bookings.models import Appointment, Review
    from chat.models import Conversation
    from chat.selectors import participating
    from records.models import AccessGrant, MedicalRecord

    uid = str(user.pk)
    others = AuditEvent.objects.exclude(actor_id=user.pk)
    targets = {
        "medical_record": MedicalRecord.objects.filter(patient=user),
        "conversation": Conversation.objects.filter(participating(user)),
        "appointment": Appointment.objects.filter(Q(patient=user) | Q(doctor_id__in=doctor_ids)),
        "review": Review.objects.filter(patient=user),  # a doctor's hidden reviews: not theirs
    }
    branches = [
        others.filter(target_type="user", target_id=uid),
        others.filter(target_type="patient", target_id=uid),
        others.filter(target_type="doctor", target_id__in=[str(i) for i in doctor_ids]),
        *(
            others.filter(target_type=kind, target_id__in=_id_texts(qs))
            for kind, qs in targets.items()
        ),
        # A doctor's list of every file shared with them names the files, not the patient:
        # only doctors the user shared a file with can have listed one of them.
        others.filter(
            action="records.listed",
            target_type="patient",
            target_id="",
            actor_id__in=AccessGrant.objects.filter(record__patient=user).values("doctor_id"),
        ),
    ]
    events = branches[0].union(*branches[1:], all=True).order_by("-created_at", "-id")
    found = []
    for e in rows.take("access_log", events):
        data = dict(e.data)
        if "record_ids" in data:  # a list of files may name other patients' files
            data["record_ids"] = [i for i in data["record_ids"] if i in own_record_ids]
            if not data["record_ids"] and e.target_id != uid:
                continue  # none of the user's files was in it
        found.append(
            {
                "time": e.created_at.isoformat(),
                "action": e.action,
                "actor_id": str(e.actor_id) if e.actor_id else None,
                "actor_role": e.actor_role,
                "target_type": e.target_type,
                "target_id": e.target_id,
                "data": data,
            }
        )
    return found
