"""Reads of medical records, each knowing its viewer, each audited.

Who sees a record: its patient; a doctor with an active grant on it, or in care with the
patient (``bookings.selectors.in_care``); an admin during a break-glass access to the
patient. Nobody sees a deleted record. Anyone else gets 404, never 403: a record's
existence is itself private.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import Role, User
from audit.services import record as audit_record
from bookings.selectors import in_care
from core import ratelimit
from core.export import AuditTargets, Rows, id_texts, iso
from core.ids import is_uuid as _valid_id
from doctors.models import Verification
from records.errors import RecordNotFound
from records.models import AccessGrant, BreakGlassAccess, MedicalRecord, ScanStatus


@dataclass(frozen=True)
class Origin:
    """Where a request came from, for the audit trail."""

    ip: str | None = None
    user_agent: str = ""


def audit(
    actor: User | None,
    action: str,
    record: MedicalRecord | None,
    origin: Origin | None,
    **data: Any,
) -> None:
    """One audit event about a record (ids only: no title, notes or file name)."""
    origin = origin or Origin()
    if record is not None:
        data.setdefault("patient_id", str(record.patient_id))
    audit_record(
        action=action,
        actor_id=actor.pk if actor else None,
        actor_role=actor.role if actor else "",
        target_type="medical_record" if record is not None else "patient",
        target_id=str(record.pk) if record is not None else str(data.get("patient_id", "")),
        ip=origin.ip,
        user_agent=origin.user_agent,
        data=data,
    )


def read_quota(viewer: User) -> None:
    """Each audited read (a list, a record, its grants) and each grant writes an audit event
    under the audit chain's lock: ``ACCOUNT_RATE_LIMITS["records_read"]`` per user, over it
    429 ``request.rate_limited`` with ``Retry-After``."""
    ratelimit.check("records_read", viewer.pk, settings.ACCOUNT_RATE_LIMITS.get("records_read"))


def _live() -> QuerySet[MedicalRecord]:
    return MedicalRecord.objects.filter(deleted_at__isnull=True)


def _break_glass(staff: User, patient_id: Any) -> bool:
    return BreakGlassAccess.objects.filter(
        staff=staff, patient_id=patient_id, expires_at__gt=timezone.now()
    ).exists()


def live_grants() -> QuerySet[AccessGrant]:
    """Grants not revoked, to a doctor still verified, of a patient whose account is open:
    a doctor whose verification is withdrawn keeps no access a patient gave, and a closed
    account's files are shared with nobody (as care ends with either: ``in_care``). An
    erasure revokes the grants for good (:func:`records.services.account_erased`)."""
    return AccessGrant.objects.filter(
        revoked_at__isnull=True,
        doctor__doctor_profile__verification=Verification.VERIFIED,
        record__patient__is_active=True,
    )


def can_view(viewer: User, record: MedicalRecord) -> bool:
    if record.deleted_at is not None or not viewer.is_active:
        return False
    if record.patient_id == viewer.pk:
        return True
    if viewer.role == Role.DOCTOR:
        granted = live_grants().filter(record=record, doctor=viewer).exists()
        return granted or in_care(doctor_user=viewer, patient=record.patient)
    if viewer.role == Role.ADMIN:
        return _break_glass(viewer, record.patient_id)
    return False


def attachable(*, doctor: User, patient: User, record_ids: list[str]) -> set[str]:
    """Of ``record_ids``, the clean files of ``patient`` that ``doctor`` may see: what may be
    attached to a chat message between them (wired into chat at the composition root)."""
    found = _live().filter(
        pk__in=[i for i in record_ids if _valid_id(i)], patient=patient, status=ScanStatus.CLEAN
    )
    return {str(r.pk) for r in found.select_related("patient") if can_view(doctor, r)}


def record_visible(*, viewer: User, record_id: Any) -> MedicalRecord:
    """The record if ``viewer`` may see it, else 404 (no audit: nothing was seen)."""
    record = None
    if _valid_id(record_id):
        record = _live().select_related("patient").filter(pk=record_id).first()
    if record is None or not can_view(viewer, record):
        raise RecordNotFound()
    return record


def record_get(*, viewer: User, record_id: Any, origin: Origin) -> MedicalRecord:
    read_quota(viewer)
    record = record_visible(viewer=viewer, record_id=record_id)
    audit(viewer, "records.viewed", record, origin)
    return record


def record_owned(*, patient: User, record_id: Any, lock: bool = False) -> MedicalRecord:
    """The caller's own live record (for the owner's writes), else 404."""
    qs = _live().filter(patient=patient)
    if lock:
        qs = qs.select_for_update()
    record = qs.filter(pk=record_id).first() if _valid_id(record_id) else None
    if record is None:
        raise RecordNotFound()
    return record


def record_list(*, viewer: User, patient_id: Any | None) -> QuerySet[MedicalRecord]:
    """The records ``viewer`` may see: their own (patients: none for another ``patient``,
    as for a doctor who may see none of that patient's); a patient's, all of them while in
    care, else those shared (doctors); without ``patient``, all shared with the doctor; a
    patient's during a break-glass access (admins)."""
    qs = _live().select_related("patient")
    if patient_id is not None and not _valid_id(patient_id):
        return qs.none()
    if viewer.role == Role.PATIENT:
        if patient_id is not None and str(patient_id) != str(viewer.pk):
            return qs.none()
        return qs.filter(patient=viewer)
    shared = live_grants().filter(doctor=viewer).values("record_id")
    if viewer.role == Role.DOCTOR:
        if patient_id is None:
            return qs.filter(pk__in=shared)
        patient = User.objects.filter(pk=patient_id, role=Role.PATIENT).first()
        if patient is None:
            return qs.none()
        if in_care(doctor_user=viewer, patient=patient):
            return qs.filter(patient=patient)
        return qs.filter(patient=patient, pk__in=shared)
    if viewer.role == Role.ADMIN and patient_id is not None and _break_glass(viewer, patient_id):
        return qs.filter(patient_id=patient_id)
    return qs.none()


def list_audit(
    *, viewer: User, patient_id: Any | None, records: list[MedicalRecord], origin: Origin
) -> None:
    """The audit event of a page of :func:`record_list`. It names the patient whose files
    the list could show: a patient's list is of their own files whatever ``patient`` they
    passed, so it never lands in another patient's access log (the export's), as if that
    patient's files had been listed."""
    whose = viewer.pk if viewer.role == Role.PATIENT else patient_id
    audit(
        viewer,
        "records.listed",
        None,
        origin,
        patient_id=str(whose or ""),
        record_ids=[str(r.pk) for r in records],
    )


def record_grants(*, patient: User, record_id: Any, origin: Origin) -> list[AccessGrant]:
    """The doctors who may see the file through a grant: not those whose verification was
    withdrawn (their grant works again, and is listed again, if they are verified again)."""
    read_quota(patient)
    record = record_owned(patient=patient, record_id=record_id)
    grants = list(live_grants().filter(record=record).order_by("created_at"))
    audit(patient, "records.grants_viewed", record, origin)
    return grants


# --- the personal-data export (accounts.selectors.user_export, wired at the root) -----------


def _export_files(user: User, rows: Rows) -> list[MedicalRecord]:
    """The user's files, deleted ones too; read once per export (the access log needs them)."""
    return rows.once(
        "records.files",
        lambda: rows.take(
            "records.files",
            MedicalRecord.objects.filter(patient=user).order_by("created_at", "id"),
        ),
    )


def export_section(user: User, rows: Rows) -> dict[str, Any]:
    """The details of the user's medical files (never their contents; deleted ones too, with
    when), the grants they gave or were given, and the staff break-glass accesses to their
    files: who, when, why."""
    files = _export_files(user, rows)
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
                "record_date": iso(r.record_date),
                "file_name": r.file_name,
                "content_type": r.content_type,
                "size": r.size,
                "sha256": r.sha256,
                "status": r.status,
                "signature": r.signature,
                "created_at": iso(r.created_at),
                "scanned_at": iso(r.scanned_at),
                "deleted_at": iso(r.deleted_at),
            }
            for r in files
        ],
        "grants": [
            {
                "id": str(g["id"]),
                "record_id": str(g["record_id"]),
                "patient_id": str(g["record__patient_id"]),
                "doctor_id": str(g["doctor_id"]),
                "created_at": iso(g["created_at"]),
                "revoked_at": iso(g["revoked_at"]),
            }
            for g in grants
        ],
        "break_glass": [
            {
                "id": str(b.id),
                "staff_id": str(b.staff_id),
                "reason": b.reason,
                "created_at": iso(b.created_at),
                "expires_at": iso(b.expires_at),
            }
            for b in accesses
        ],
    }


def export_audit_targets(user: User, rows: Rows) -> AuditTargets:
    """Events about the user's files; and the lists of files shared with a doctor, which name
    the files, not the patient: only doctors the user shared a file with can have listed one
    of them. Such a list shows only the user's files, and is left out if it has none of
    them."""
    uid = str(user.pk)
    own = {str(r.id) for r in _export_files(user, rows)}

    def shown(event: Any, data: dict[str, Any]) -> dict[str, Any] | None:
        if "record_ids" in data:  # a list of files may name other patients' files
            data["record_ids"] = [i for i in data["record_ids"] if i in own]
            if not data["record_ids"] and event.target_id != uid:
                return None  # none of the user's files was in it
        return data

    shared_with = AccessGrant.objects.filter(record__patient=user).values("doctor_id")
    return AuditTargets(
        events=[
            Q(
                target_type="medical_record",
                target_id__in=id_texts(MedicalRecord.objects.filter(patient=user)),
            ),
            Q(
                action="records.listed",
                target_type="patient",
                target_id="",
                actor_id__in=shared_with,
            ),
        ],
        shown=shown,
    )
