"""Writes of medical records: uploads (through the API or straight to storage), scan
verdicts, deletion and purge, grants, break-glass access. Every one is audited."""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import islice
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.text import get_valid_filename
from django.utils.translation import gettext as _

from accounts.errors import RoleRequired
from accounts.models import Role, User
from audit.services import seal
from bookings.selectors import in_care
from core import ratelimit
from doctors.models import Verification
from realtime.services import notify
from records import storage
from records.errors import (
    DirectUploadUnavailable,
    DoctorNotFound,
    EmptyFile,
    FileTooLarge,
    FileTypeNotAllowed,
    NotInCare,
    ReasonRequired,
    RecordNotFound,
    UploadNotReceived,
)
from records.filetypes import HEAD_BYTES, download_name, sniff
from records.models import AccessGrant, BreakGlassAccess, MedicalRecord, ScanStatus
from records.scanner import Verdict
from records.selectors import Origin, audit, can_view, read_quota, record_owned

logger = logging.getLogger(__name__)
FILE_NAME_MAX = 120


@dataclass(frozen=True)
class RecordFields:
    category: str
    title: str
    notes: str = ""
    record_date: date | None = None


def sanitize_file_name(name: str) -> str:
    """A name safe in a header and on any file system: no path, no control characters,
    word characters (any script), dots, dashes and underscores only, at most 120 long."""
    name = unicodedata.normalize("NFKC", name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    try:
        name = get_valid_filename(name)
    except Exception:  # SuspiciousFileOperation for "", "." and ".."
        name = ""
    name = name.lstrip(".")
    if len(name) > FILE_NAME_MAX:
        stem, dot, ext = name.rpartition(".")
        ext = ext[:16] if dot else ""
        name = (stem or name)[: FILE_NAME_MAX - len(ext) - 1] + ("." + ext if ext else "")
    return name or "file"


def _patient_for(uploader: User, patient_id: Any) -> User:
    """A patient uploads for themself; a doctor for a patient in their care."""
    if uploader.role == Role.PATIENT:
        if patient_id not in (None, "", uploader.pk, str(uploader.pk)):
            raise NotInCare()
        return uploader
    if uploader.role != Role.DOCTOR:
        raise RoleRequired()
    patient = User.objects.filter(pk=patient_id, role=Role.PATIENT, is_active=True).first()
    if patient is None or not in_care(doctor_user=uploader, patient=patient):
        raise NotInCare()
    return patient


def _enqueue_scan(record: MedicalRecord, delay: timedelta | None = None) -> None:
    from records.tasks import scan_record

    task = scan_record.using(run_after=timezone.now() + delay) if delay else scan_record
    task.enqueue(str(record.pk))


def _new_record(
    uploader: User, patient: User, fields: RecordFields, file_name: str, **extra: Any
) -> MedicalRecord:
    record = MedicalRecord(
        patient=patient,
        uploaded_by=uploader,
        category=fields.category,
        title=fields.title,
        notes=fields.notes,
        record_date=fields.record_date,
        file_name=sanitize_file_name(file_name),
        **extra,
    )
    record.storage_key = storage.quarantine_key(record.pk)
    return record


def _upload_quota(user: User) -> None:
    """Each file costs storage and a virus scan: ``ACCOUNT_RATE_LIMITS["records_upload"]``."""
    ratelimit.check("records_upload", user.pk, settings.ACCOUNT_RATE_LIMITS.get("records_upload"))


# A presigned POST is judged when it starts: a large file sent just before its form expired
# may arrive a little after. Well short of the purge's hour (``records_purge``).
COMPLETE_GRACE = timedelta(minutes=10)


def record_upload(
    *,
    uploader: User,
    patient_id: Any,
    fields: RecordFields,
    upload: Any,
    origin: Origin,
) -> MedicalRecord:
    """Store an uploaded file in quarantine and enqueue its scan. ``upload`` comes from
    :class:`records.uploads.RecordUploadHandler` (temporary file, ``sha256``, ``head``)."""
    _upload_quota(uploader)
    patient = _patient_for(uploader, patient_id)
    if upload.size == 0:
        raise EmptyFile()
    if upload.size > settings.RECORDS_MAX_UPLOAD_BYTES:
        raise FileTooLarge()
    content_type = sniff(upload.head)
    if content_type is None:
        raise FileTypeNotAllowed()
    record = _new_record(
        uploader,
        patient,
        fields,
        upload.name,
        content_type=content_type,
        size=upload.size,
        sha256=upload.sha256,
        status=ScanStatus.PENDING,
    )
    # The bytes go to storage outside the transaction: no row lock held during an upload.
    storage.save(record.storage_key, upload, content_type)
    try:
        with transaction.atomic():
            record.save(force_insert=True)
            _enqueue_scan(record)
            audit(uploader, "records.uploaded", record, origin, size=record.size)
    except BaseException:
        storage.delete(record.storage_key)
        raise
    return record


def upload_discard(record: MedicalRecord) -> None:
    """Delete the stored object of an upload whose record was rolled back (best effort: a
    failure is logged; the object was never reachable without its row)."""
    try:
        storage.delete(record.storage_key)
    except Exception:
        logger.exception("orphan upload not deleted", extra={"record": str(record.pk)})


def direct_upload_start(
    *, uploader: User, patient_id: Any, fields: RecordFields, file_name: str, origin: Origin
) -> tuple[MedicalRecord, dict[str, Any]]:
    """A record waiting for its file, and a presigned POST that puts the file into its
    quarantine key (size capped by the policy). The server never sees the bytes."""
    if not storage.is_s3():
        raise DirectUploadUnavailable()
    _upload_quota(uploader)
    patient = _patient_for(uploader, patient_id)
    ttl = settings.RECORDS_DIRECT_UPLOAD_TTL
    expires = timezone.now() + timedelta(seconds=ttl)
    with transaction.atomic():
        record = _new_record(
            uploader,
            patient,
            fields,
            file_name,
            status=ScanStatus.AWAITING_UPLOAD,
            upload_expires_at=expires,
        )
        record.save(force_insert=True)
        audit(uploader, "records.upload_started", record, origin)
        # The form cannot be taken back: whatever it puts in quarantine after the record
        # moved on is swept once it has expired (``quarantine_orphan_delete``).
        from records.tasks import quarantine_sweep

        quarantine_sweep.using(run_after=expires + timedelta(minutes=1)).enqueue(str(record.pk))
    form = storage.presigned_post(
        record.storage_key, max_bytes=settings.RECORDS_MAX_UPLOAD_BYTES, ttl=ttl
    )
    return record, form


def quarantine_orphan_delete(*, record_id: Any) -> str:
    """After a direct upload's form expired: its quarantine key holds an orphan unless the
    record still waits there (for its file or its scan). The form may be reused until it
    expires, after the file was scanned, refused or deleted: such bytes were never scanned
    and nothing refers to them (the purge deletes the record's own key only)."""
    key = storage.quarantine_key(record_id)
    with transaction.atomic():
        record = MedicalRecord.objects.select_for_update().filter(pk=record_id).first()
        waiting = (ScanStatus.AWAITING_UPLOAD, ScanStatus.PENDING)
        if (
            record is not None
            and record.deleted_at is None
            and record.storage_key == key
            and record.status in waiting
        ):
            return "kept"
        storage.delete(key)
    return "deleted"


def direct_upload_complete(*, uploader: User, record_id: Any, origin: Origin) -> MedicalRecord:
    """The client says its direct upload finished: check the object (size, type by its
    first bytes) and enqueue the scan. A refused file is deleted; the link may be reused
    until it expires. Once it has (and :data:`COMPLETE_GRACE` with it) the record is left to
    the purge: 409, as for a file that never arrived. Rate limited per user
    (``ACCOUNT_RATE_LIMITS["records_complete"]``).

    Uploading gives no lasting right to the file: a record already finalised is shown only
    to an uploader who may still see it (``selectors.can_view``, else 404, as ``GET``) and
    the read is audited as ``GET``'s is; a pending upload is finalised only while its
    uploader may still add to that patient's files (a doctor whose care with the patient
    ended, or whose verification was withdrawn, since the upload started: 403)."""
    # Each /complete asks storage twice and may audit; a client polls it until its upload
    # has arrived.
    limits = settings.ACCOUNT_RATE_LIMITS
    ratelimit.check("records_complete", uploader.pk, limits.get("records_complete"))
    with transaction.atomic():
        record = (
            MedicalRecord.objects.select_for_update()
            .filter(pk=record_id, uploaded_by=uploader, deleted_at__isnull=True)
            .first()
        )
        if record is None:
            raise RecordNotFound()
        if record.status != ScanStatus.AWAITING_UPLOAD:
            if not can_view(uploader, record):
                raise RecordNotFound()
            audit(uploader, "records.viewed", record, origin)
            return record
        _patient_for(uploader, record.patient_id)
        expires = record.upload_expires_at
        if expires is not None and timezone.now() > expires + COMPLETE_GRACE:
            raise UploadNotReceived()
        if not storage.exists(record.storage_key):
            raise UploadNotReceived()
        size = storage.size(record.storage_key)
        refusal: Exception | None = None
        content_type = None
        if size == 0:
            refusal = EmptyFile()
        elif size > settings.RECORDS_MAX_UPLOAD_BYTES:
            refusal = FileTooLarge()
        else:
            content_type = sniff(storage.read_head(record.storage_key, HEAD_BYTES))
            refusal = FileTypeNotAllowed() if content_type is None else None
        if refusal is not None or content_type is None:
            storage.delete(record.storage_key)
            raise refusal or FileTypeNotAllowed()
        record.size, record.content_type = size, content_type
        record.status, record.upload_expires_at = ScanStatus.PENDING, None
        record.save(update_fields=["size", "content_type", "status", "upload_expires_at"])
        _enqueue_scan(record)
        audit(uploader, "records.uploaded", record, origin, size=size, direct=True)
    return record


# Why a file was refused without a verdict (in the notification and the audit trail).
TOO_LARGE_TO_SCAN = "too_large_to_scan"  # longer than clamd's StreamMaxLength
SCAN_FAILED = "scan_failed"  # RECORDS_SCAN_MAX_ATTEMPTS failed attempts, or its worker died
SCAN_MAX_ATTEMPTS = 30  # ~ a day of attempts at the default backoff (RECORDS_SCAN_MAX_ATTEMPTS)


def _locked() -> QuerySet[MedicalRecord]:
    # Lock the record only: FOR UPDATE on the joined user row would block every insert
    # that references that user (its foreign key check) while we wait for the audit lock.
    return MedicalRecord.objects.select_for_update(of=("self",)).select_related("uploaded_by")


def scan_retry(*, record_id: Any) -> timedelta | None:
    """The scanner could not answer: the record stays pending and is tried again later,
    waiting twice as long each time (30 s, 1 min, 2 min, ... up to the configured cap).
    After ``RECORDS_SCAN_MAX_ATTEMPTS`` failed attempts the file is refused instead (None):
    no record stays pending for ever."""
    with transaction.atomic():
        return _retry_locked(_locked().get(pk=record_id))


def _retry_locked(record: MedicalRecord) -> timedelta | None:
    max_attempts = getattr(settings, "RECORDS_SCAN_MAX_ATTEMPTS", SCAN_MAX_ATTEMPTS)
    record.scan_attempts += 1
    record.save(update_fields=["scan_attempts"])
    if record.status == ScanStatus.PENDING and record.scan_attempts >= max_attempts:
        _refuse(record, ScanStatus.REJECTED, reason=SCAN_FAILED)
        return None
    exponent = min(record.scan_attempts - 1, 20)
    delay = timedelta(seconds=min(30 * 2**exponent, settings.RECORDS_SCAN_RETRY_MAX_SECONDS))
    _enqueue_scan(record, delay)
    return delay


SCANS_REQUEUE_BATCH = 500  # lost scans enqueued again per run, oldest first
SCANS_REQUEUE_LOOKED = 50_000  # pending records looked at per run, at most


def _scans_waiting(record_ids: list[str]) -> set[str]:
    """Of ``record_ids``, those with a scan task waiting or running (its row in the task
    table: ``READY``, or ``RUNNING``, which ``core.reclaim`` settles if its worker died)."""
    from django_tasks_db.models import DBTaskResult

    from records.tasks import scan_record

    return set(
        DBTaskResult.objects.filter(
            task_path=scan_record.module_path,
            status__in=("READY", "RUNNING"),
            args_kwargs__args__0__in=record_ids,
        ).values_list("args_kwargs__args__0", flat=True)
    )


def _lost_scans(pending: Q) -> list[str]:
    """The oldest :data:`SCANS_REQUEUE_BATCH` ``pending`` records with no scan waiting. Those
    with one (a clamd outage: hundreds of retries) are passed over, not counted against the
    batch: the lost scans of newer records are found all the same."""
    ids = (
        MedicalRecord.objects.filter(pending)
        .order_by("created_at")
        .values_list("pk", flat=True)[:SCANS_REQUEUE_LOOKED]
        .iterator(chunk_size=SCANS_REQUEUE_BATCH)
    )
    lost: list[str] = []
    while len(lost) < SCANS_REQUEUE_BATCH:
        chunk = [str(pk) for pk in islice(ids, SCANS_REQUEUE_BATCH)]
        if not chunk:
            break
        waiting = _scans_waiting(chunk)
        lost += [i for i in chunk if i not in waiting]
    return lost[:SCANS_REQUEUE_BATCH]


def scans_requeue(*, now: datetime | None = None) -> int:
    """Enqueue again the scan of each pending record that has none waiting: its task failed
    without enqueueing the next (the database lost as it ran and as it asked for its retry,
    ``tasks._retry``), and nothing else would ever scan it. Counted as a failed attempt
    (:func:`scan_retry`: its backoff, and the refusal after the last one), so that no
    record stays pending for ever. Only records pending for longer than the longest
    backoff, the oldest :data:`SCANS_REQUEUE_BATCH` lost ones per run; each judged again
    under its lock (a scan task is enqueued under it), how many were requeued."""
    now = now or timezone.now()
    since = now - timedelta(seconds=settings.RECORDS_SCAN_RETRY_MAX_SECONDS)
    pending = Q(status=ScanStatus.PENDING, deleted_at__isnull=True, created_at__lte=since)
    lost = _lost_scans(pending)
    requeued = 0
    for record_id in lost:
        with transaction.atomic():
            record = _locked().filter(pending, pk=record_id).first()
            if record is None or _scans_waiting([record_id]):
                continue
            _retry_locked(record)
            requeued += 1
    if requeued:
        logger.warning("lost record scans enqueued again", extra={"count": requeued})
    return requeued


def scan_give_up(*, record_id: Any, reason: str) -> str:
    """A pending file that will never get a verdict (clamd refuses its size; its scan took
    its worker down too often): refused like an infected one, the uploader told why."""
    with transaction.atomic():
        record = _locked().filter(pk=record_id).first()
        if record is None or record.status != ScanStatus.PENDING or record.deleted_at is not None:
            return "skipped"  # a deleted record's object goes with the purge
        return _refuse(record, ScanStatus.REJECTED, reason=reason)


def _local_day(moment: datetime, user: User) -> str:
    """The day of ``moment`` where ``user`` lives (their profile's zone; UTC if unknown)."""
    try:
        zone = ZoneInfo(user.time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return moment.astimezone(zone).date().isoformat()


def _render_refused(record: MedicalRecord, status: str, reason: str) -> Any:
    def render(user: User) -> tuple[str, str]:
        day = _local_day(record.created_at, user)
        if status == ScanStatus.INFECTED:
            body = _(
                "The virus scan found %(signature)s in the file you uploaded on %(day)s. "
                "It has been deleted; nobody can download it."
            ) % {"signature": record.signature, "day": day}
        elif reason == TOO_LARGE_TO_SCAN:
            body = _(
                "The file you uploaded on %(day)s is too large for the virus scan. It has been "
                "deleted; please upload a smaller file."
            ) % {"day": day}
        elif reason == SCAN_FAILED:
            body = _(
                "The file you uploaded on %(day)s could not be virus-scanned. It has been "
                "deleted; please upload it again."
            ) % {"day": day}
        else:
            body = _(
                "The file you uploaded on %(day)s changed after it was checked. It has been "
                "deleted; please upload it again."
            ) % {"day": day}
        return _("A file you uploaded was refused"), body

    return render


def _delete_on_commit(key: str) -> None:
    """Delete an object once the transaction has committed: rolled back, the row still
    points at it. A failure is logged (the committed row no longer refers to it)."""
    transaction.on_commit(lambda: storage.delete(key), robust=True)


def _refuse(record: MedicalRecord, status: str, reason: str = "", **data: Any) -> str:
    """Mark the record, tell the uploader, audit it; its objects are deleted on commit (the
    quarantined one, and a clean copy an interrupted promotion may have left)."""
    keys = {record.storage_key, storage.clean_key(record.patient_id, record.pk)} - {""}
    record.status, record.storage_key, record.scanned_at = status, "", timezone.now()
    record.save(update_fields=["status", "signature", "storage_key", "scanned_at"])
    why = {"reason": reason} if reason else {}
    notify(
        users=[record.uploaded_by],
        kind=f"records.{status}",
        data={"record_id": str(record.pk), "status": status, **why},
        render=_render_refused(record, status, reason),
    )
    audit(None, f"records.{status}", record, None, **why, **data)
    for key in sorted(keys):
        _delete_on_commit(key)
    return status


def _changed(record: MedicalRecord, verdict: Verdict) -> bool:
    """What was scanned is not what was checked at upload (hash, type, size)."""
    return bool(
        (record.sha256 and record.sha256 != verdict.sha256)
        or sniff(verdict.head) != record.content_type
        or verdict.size > settings.RECORDS_MAX_UPLOAD_BYTES
    )


def _promote(record: MedicalRecord, verdict: Verdict, version: str | None, copied: bool) -> str:
    """Copy the file to its clean place (unless ``copied``: it was scanned there) and mark
    the record clean; the quarantined object goes on commit. If this transaction fails
    before its commit, the copy is deleted while the row is still locked (a rerun copies
    again): the row and the objects never disagree."""
    source, target = record.storage_key, storage.clean_key(record.patient_id, record.pk)
    if not copied:
        storage.copy_scanned(
            source,
            target,
            version=version,
            file_name=download_name(record.file_name, record.content_type),
            content_type=record.content_type,
        )
    try:
        record.status, record.storage_key, record.scanned_at = (
            ScanStatus.CLEAN,
            target,
            timezone.now(),
        )
        record.sha256, record.size = verdict.sha256, verdict.size
        record.save(update_fields=["status", "storage_key", "scanned_at", "sha256", "size"])
        audit(None, "records.clean", record, None)
    except BaseException:
        if not copied:
            try:
                storage.delete(target)
            except Exception:  # the error that matters is the one being raised
                logger.exception("clean copy not deleted", extra={"record": str(record.pk)})
        raise
    _delete_on_commit(source)
    return "clean"


def scan_verdict_apply(
    *, record_id: Any, verdict: Verdict, version: str | None = None, scanned_key: str = ""
) -> str:
    """Make a clean file available (copied out of quarantine, only if it is still the
    version that was scanned) or refuse an infected or changed one, telling the uploader.
    ``scanned_key`` is what was scanned when not the record's quarantined object: its clean
    copy, left by an interrupted promotion. Only a pending record changes; one deleted while
    its scan ran is not made available (its object goes with the purge), but an infected
    file is still removed at once."""
    with transaction.atomic():
        record = _locked().filter(pk=record_id).first()
        if record is None or record.status != ScanStatus.PENDING:
            return "skipped"
        if verdict.infected:
            record.signature = verdict.signature[:200]
            return _refuse(record, ScanStatus.INFECTED, signature=record.signature)
        if record.deleted_at is not None:
            return "skipped"
        if _changed(record, verdict):
            return _refuse(record, ScanStatus.REJECTED)
        copied = scanned_key == storage.clean_key(record.patient_id, record.pk)
        return _promote(record, verdict, version, copied)


def record_delete(*, patient: User, record_id: Any, origin: Origin) -> None:
    """Soft delete by the owner: gone from every view at once; the stored object is removed
    ``RECORDS_RETENTION_DAYS`` later by :func:`records_purge`."""
    with transaction.atomic():
        record = record_owned(patient=patient, record_id=record_id, lock=True)
        record.deleted_at = timezone.now()
        record.save(update_fields=["deleted_at"])
        audit(patient, "records.deleted", record, origin)


def records_purge(*, now: datetime | None = None) -> int:
    """Remove the objects of records deleted longer ago than the retention time, and of
    direct uploads never finalised. The rows stay (the audit trail points at them). Each
    record is judged due again under its lock: one finalised (``/complete``) since the
    listing is no longer due and is left alone."""
    now = now or timezone.now()
    retention = timedelta(days=settings.RECORDS_RETENTION_DAYS)
    purged = 0
    due = Q(purged_at__isnull=True) & (
        Q(deleted_at__lte=now - retention)
        | Q(
            status=ScanStatus.AWAITING_UPLOAD,
            upload_expires_at__lte=now - timedelta(hours=1),
        )
    )
    for record_id in MedicalRecord.objects.filter(due).values_list("pk", flat=True)[:500]:
        with transaction.atomic():
            record = MedicalRecord.objects.select_for_update().filter(due, pk=record_id).first()
            if record is None:
                continue
            if record.storage_key:
                storage.delete(record.storage_key)
            record.storage_key, record.purged_at = "", now
            record.deleted_at = record.deleted_at or now
            record.save(update_fields=["storage_key", "purged_at", "deleted_at"])
            audit(None, "records.purged", record, None)
            purged += 1
    return purged


def clean_objects_restamp() -> int:
    """Give each clean file on S3 promoted before its object carried the headers it is served
    with (the links named the file then) its ``Content-Disposition`` and type, by copying the
    object onto itself (encrypted as every copy is); how many. Without it such a file opens
    in the browser and saves under its key. Run once after upgrading
    (``manage.py records_restamp``); running it again finds nothing to do."""
    if not storage.is_s3():
        return 0
    done = 0
    clean = (
        MedicalRecord.objects.filter(status=ScanStatus.CLEAN, deleted_at__isnull=True)
        .exclude(storage_key="")
        .order_by("pk")
    )
    for record in clean.iterator(chunk_size=500):
        if storage.served_as_attachment(record.storage_key):
            continue
        storage.copy_scanned(
            record.storage_key,
            record.storage_key,
            file_name=download_name(record.file_name, record.content_type),
            content_type=record.content_type,
        )
        done += 1
    return done


def grant_create(*, patient: User, record_id: Any, doctor_id: Any, origin: Origin) -> AccessGrant:
    """Share the record with a verified doctor (an active grant is returned as it is). Counted
    with the reads (:func:`records.selectors.read_quota`): each writes an audit event."""
    read_quota(patient)
    with transaction.atomic():
        record = record_owned(patient=patient, record_id=record_id, lock=True)
        doctor = User.objects.filter(
            pk=doctor_id,
            role=Role.DOCTOR,
            is_active=True,
            doctor_profile__verification=Verification.VERIFIED,
        ).first()
        if doctor is None:
            raise DoctorNotFound()
        existing = AccessGrant.objects.filter(
            record=record, doctor=doctor, revoked_at__isnull=True
        ).first()
        if existing is not None:
            return existing
        try:
            with transaction.atomic():
                grant = AccessGrant.objects.create(record=record, doctor=doctor, granted_by=patient)
        except IntegrityError:
            return AccessGrant.objects.get(record=record, doctor=doctor, revoked_at__isnull=True)
        audit(patient, "records.granted", record, origin, doctor_id=str(doctor.pk))
    return grant


def grant_revoke(*, patient: User, record_id: Any, grant_id: Any, origin: Origin) -> None:
    with transaction.atomic():
        record = record_owned(patient=patient, record_id=record_id, lock=True)
        grant = (
            AccessGrant.objects.select_for_update()
            .filter(pk=grant_id, record=record, revoked_at__isnull=True)
            .first()
        )
        if grant is None:
            raise RecordNotFound()
        grant.revoked_at = timezone.now()
        grant.save(update_fields=["revoked_at"])
        audit(patient, "records.revoked", record, origin, doctor_id=str(grant.doctor_id))


def account_erased(user: User, person: Any) -> None:
    """Erasure of ``user``'s account (``accounts.services.ERASURE_HOOKS``, wired at the root):
    every grant not yet revoked of the patient's files, and to the doctor, is revoked, each
    audited (``records.revoked``, marked ``erasure``). The files stay (legal retention),
    seen by nobody but the doctors in the patient's care (``in_care``: none once the account
    is closed) and by an admin's break-glass access. A grant made beside the erasure is dead
    anyway: the patient's account is closed (``selectors.live_grants``)."""
    grants = list(
        AccessGrant.objects.filter(
            Q(record__patient=user) | Q(doctor=user), revoked_at__isnull=True
        ).select_related("record")
    )
    AccessGrant.objects.filter(pk__in=[g.pk for g in grants]).update(revoked_at=timezone.now())
    for grant in grants:
        audit(
            None,
            "records.revoked",
            grant.record,
            None,
            doctor_id=str(grant.doctor_id),
            erasure=True,
        )


def break_glass_open(
    *, staff: User, patient_id: Any, reason: str, origin: Origin
) -> BreakGlassAccess:
    """An admin's emergency access to one patient's records, for a limited time, with the
    reason in the audit trail. Admins have no access without it."""
    if staff.role != Role.ADMIN:
        raise RoleRequired()
    reason = (reason or "").strip()
    if len(reason) < 10:
        raise ReasonRequired()
    patient = User.objects.filter(pk=patient_id, role=Role.PATIENT).first()
    if patient is None:
        raise RecordNotFound()
    minutes = settings.RECORDS_BREAK_GLASS_MINUTES
    with transaction.atomic():
        access = BreakGlassAccess.objects.create(
            staff=staff,
            patient=patient,
            reason=reason,
            expires_at=timezone.now() + timedelta(minutes=minutes),
        )
        audit(
            staff,
            "records.break_glass",
            None,
            origin,
            patient_id=str(patient.pk),
            reason_sealed=seal(reason),  # may tell of the patient's health: admins read it
            minutes=minutes,
        )
    return access
