"""Background work of records: the virus scan of each upload, and the purge of deleted
files, run by the task worker (django-tasks, database backend)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django_tasks import task

from core.tasks import loop_again
from records import scanner, storage
from records.models import MedicalRecord, ScanStatus

logger = logging.getLogger(__name__)


@task()
def scan_record(record_id: str) -> str:
    """Stream the quarantined file to clamd and apply the verdict. If clamd cannot be asked,
    the record stays pending (never downloadable) and the scan is retried with backoff."""
    from records.services import scan_retry, scan_verdict_apply

    record = MedicalRecord.objects.filter(pk=record_id).first()
    if record is None or record.status != ScanStatus.PENDING or record.deleted_at is not None:
        return "skipped"  # a deleted record's quarantined object goes with the purge
    try:
        stream, version = storage.open_versioned(record.storage_key)
        with stream:
            verdict = scanner.scan(stream)
        return scan_verdict_apply(record_id=record_id, verdict=verdict, version=version)
    except scanner.ScannerUnavailable as exc:
        reason = str(exc)
    except Exception as exc:  # storage or database trouble: never leave a record stuck
        logger.exception("scan failed, retried later", extra={"record": record_id})
        reason = type(exc).__name__
    delay = scan_retry(record_id=record_id)
    logger.warning(
        "record not scanned, retried later",
        extra={"record": record_id, "reason": reason, "retry_in_s": delay.total_seconds()},
    )
    return "retry"


@task()
def quarantine_sweep(record_id: str) -> str:
    """Once a direct upload's form has expired, delete what it left in quarantine that no
    record waits for (``services.quarantine_orphan_delete``)."""
    from records.services import quarantine_orphan_delete

    return quarantine_orphan_delete(record_id=record_id)


HOUSEKEEPING_EVERY = timedelta(hours=1)


@task()
def records_housekeeping() -> int:
    """Purge what is due; the next run is enqueued first (``loop_again``)."""
    from records.services import records_purge

    loop_again(records_housekeeping, HOUSEKEEPING_EVERY)
    return records_purge()
