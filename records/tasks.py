"""Background work of records: the virus scan of each upload, the purge of deleted files and
the sweep of objects no record needs, run by the task worker (django-tasks, database backend)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from django_tasks import task

from core.tasks import loop_again, run_steps
from records import scanner, storage
from records.models import MedicalRecord, ScanStatus

logger = logging.getLogger(__name__)


@task()
def scan_record(record_id: str) -> str:
    """Stream the quarantined file to clamd and apply the verdict. If clamd cannot be asked,
    the record stays pending (never downloadable) and the scan is retried with backoff, up
    to ``RECORDS_SCAN_MAX_ATTEMPTS``; a file clamd will never take is refused at once. The
    database failing (from the first read on) is retried the same way; if not even the
    retry can be written, see :func:`_retry`."""
    from records.services import TOO_LARGE_TO_SCAN, scan_give_up, scan_verdict_apply

    try:
        record = MedicalRecord.objects.filter(pk=record_id).first()
        if record is None or record.status != ScanStatus.PENDING or record.deleted_at is not None:
            return "skipped"  # a deleted record's quarantined object goes with the purge
        key = _scannable_key(record)
        stream, version = storage.open_versioned(key)
        with stream:
            verdict = scanner.scan(stream)
        return scan_verdict_apply(
            record_id=record_id, verdict=verdict, version=version, scanned_key=key
        )
    except scanner.ScanTooLarge:
        return scan_give_up(record_id=record_id, reason=TOO_LARGE_TO_SCAN)
    except scanner.ScannerUnavailable as exc:
        reason = str(exc)
    except Exception as exc:  # storage or database trouble: never leave a record stuck
        logger.exception("scan failed, retried later", extra={"record": record_id})
        reason = type(exc).__name__
    return _retry(record_id, reason)


def _retry(record_id: str, reason: str) -> str:
    """Count the failed attempt and enqueue the next (``services.scan_retry``). If the
    database refuses that too (a deadlock, a lock timeout, a connection lost), the scan is
    enqueued again uncounted, after the longest backoff; if even that cannot be written, the
    task fails and ``services.scans_requeue`` (hourly housekeeping) finds the record pending
    with no scan waiting."""
    from records.services import scan_retry

    try:
        delay = scan_retry(record_id=record_id)
    except DatabaseError:
        logger.exception("scan retry not recorded, enqueued again", extra={"record": record_id})
        delay = timedelta(seconds=settings.RECORDS_SCAN_RETRY_MAX_SECONDS)
        scan_record.using(run_after=timezone.now() + delay).enqueue(record_id)
        return "retry"
    if delay is None:
        logger.warning("record not scanned, refused", extra={"record": record_id, "reason": reason})
        return "rejected"
    logger.warning(
        "record not scanned, retried later",
        extra={"record": record_id, "reason": reason, "retry_in_s": delay.total_seconds()},
    )
    return "retry"


def _scannable_key(record: MedicalRecord) -> str:
    """The quarantined object; or, if it is gone but the record's clean copy exists (a
    promotion whose transaction rolled back after the object had been moved, as promotions
    did before the move waited for the commit), that copy: scanned again, its promotion is
    finished instead of retried for ever."""
    if storage.exists(record.storage_key):
        return record.storage_key
    clean = storage.clean_key(record.patient_id, record.pk)
    return clean if storage.exists(clean) else record.storage_key


def scan_record_given_up(record_id: str) -> None:
    """``core.reclaim`` gave up on a scan whose worker died in it too often (a file that
    takes clamd or the worker down): the file is refused, the uploader told."""
    from records.services import SCAN_FAILED, scan_give_up

    scan_give_up(record_id=record_id, reason=SCAN_FAILED)


@task()
def quarantine_sweep(record_id: str) -> str:
    """Once a direct upload's form has expired, delete what it left in quarantine that no
    record waits for (``services.quarantine_orphan_delete``)."""
    from records.services import quarantine_orphan_delete

    return quarantine_orphan_delete(record_id=record_id)


HOUSEKEEPING_EVERY = timedelta(hours=1)


@task()
def records_housekeeping() -> dict[str, int | None]:
    """Every hour: purge what is due, delete a bounded number of objects no record needs
    (``records.orphans``), and enqueue again the scans lost to a failed task
    (``services.scans_requeue``). The next run is enqueued first (``loop_again``); each
    step runs on its own (``run_steps``)."""
    from records.orphans import orphans_sweep
    from records.services import records_purge, scans_requeue

    loop_again(records_housekeeping, HOUSEKEEPING_EVERY)
    return run_steps(
        "records",
        {
            "purged": records_purge,
            "orphans_deleted": orphans_sweep,
            "scans_requeued": scans_requeue,
        },
    )
