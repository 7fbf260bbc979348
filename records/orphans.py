"""The sweep of objects no record needs: what the other paths can leave in storage.

Each path deletes its own objects, but some deletes can be lost: a verdict's or a refusal's
delete runs after its commit (``transaction.on_commit``) and is gone if the worker dies in
between or storage refuses it; an upload whose row was never written or was rolled back
deletes its object on a best-effort basis; a promotion interrupted before its commit leaves a
clean copy (and, on disk, a temporary link) that the purge of a record never scanned again
does not know of; a reused direct-upload form puts bytes back into quarantine.

So, ``RECORDS_ORPHAN_GRACE_SECONDS`` after its last write, an object under ``quarantine/`` or
``records/`` is deleted unless a record that is not purged still needs it:

- its ``storage_key`` (a file awaiting upload or scan in quarantine, a clean file, a deleted
  file kept for the retention time until :func:`records.services.records_purge`);
- while the record is ``pending``, anything under its clean place: a copy left by an
  interrupted promotion, which the next scan may still scan and finish
  (``tasks._scannable_key``), or a promotion running now.

Keys carry ids only (``storage.quarantine_key``, ``storage.clean_key``); an object whose key
names no record is needed by none. The grace period covers an upload in flight (its object is
written before its row). Each run looks at a bounded number of objects per prefix and goes on
where the last run stopped (a cursor in the cache: lost, the walk starts over); the logs carry
counts, never keys.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from core.cache import best_effort
from records import storage
from records.models import MedicalRecord, ScanStatus

logger = logging.getLogger(__name__)

PREFIXES = ("quarantine", "records")  # where records write (``storage.*_key``)
SWEEP_LIMIT = 2000  # objects looked at per prefix and run
CURSOR_TTL = timedelta(days=7)


def _cursor_key(prefix: str) -> str:
    return f"records:orphan_sweep:{prefix}"


def grace() -> timedelta:
    return timedelta(seconds=settings.RECORDS_ORPHAN_GRACE_SECONDS)


def record_id_of(key: str) -> uuid.UUID | None:
    """The record a key names: ``quarantine/<record>``, ``records/<patient>/<record>``, or
    a temporary link of a promotion on disk, ``records/<patient>/.<record>.<pid>.<thread>``."""
    parts = key.split("/")
    if len(parts) == 2 and parts[0] == "quarantine":
        name = parts[1]
    elif len(parts) == 3 and parts[0] == "records":
        name = parts[2].lstrip(".").split(".", 1)[0]
    else:
        return None
    try:
        return uuid.UUID(name)
    except ValueError:
        return None


def needed(keys: list[str]) -> set[str]:
    """Which of ``keys`` a record still needs (one query)."""
    by_key = {key: record_id_of(key) for key in keys}
    ids = {record_id for record_id in by_key.values() if record_id is not None}
    if not ids:
        return set()
    rows = MedicalRecord.objects.filter(pk__in=ids, purged_at__isnull=True).values_list(
        "pk", "patient_id", "status", "storage_key"
    )
    referenced: set[str] = set()
    pending: dict[uuid.UUID, str] = {}  # record id: the folder of its clean place
    for record_id, patient_id, status, storage_key in rows:
        if storage_key:
            referenced.add(storage_key)
        if status == ScanStatus.PENDING:
            pending[record_id] = storage.clean_key(patient_id, record_id).rsplit("/", 1)[0] + "/"
    return {
        key
        for key, record_id in by_key.items()
        if key in referenced or (record_id in pending and key.startswith(pending[record_id]))
    }


def _sweep(prefix: str, *, before: datetime, limit: int) -> dict[str, int]:
    after = best_effort(cache.get, _cursor_key(prefix)) or ""
    found, next_after = storage.list_objects(prefix, after=str(after), limit=limit)
    old = [key for key, written in found if written <= before]
    keep = needed(old)
    deleted = failed = 0
    for key in old:
        if key in keep:
            continue
        try:
            storage.delete(key)
        except Exception as exc:  # the next walk tries again
            logger.warning("orphan object not deleted (%s)", type(exc).__name__)
            failed += 1
        else:
            deleted += 1
    if next_after:
        best_effort(cache.set, _cursor_key(prefix), next_after, CURSOR_TTL.total_seconds())
    else:
        best_effort(cache.delete, _cursor_key(prefix))
    return {"listed": len(found), "old": len(old), "deleted": deleted, "failed": failed}


def orphans_sweep(*, now: datetime | None = None, limit: int = SWEEP_LIMIT) -> int:
    """Delete the objects older than the grace period that no record needs, looking at up to
    ``limit`` objects under each prefix; how many were deleted."""
    before = (now or timezone.now()) - grace()
    deleted = 0
    for prefix in PREFIXES:
        counts: dict[str, Any] = _sweep(prefix, before=before, limit=limit)
        deleted += counts["deleted"]
        if counts["deleted"] or counts["failed"]:
            logger.info("orphan objects swept", extra={"prefix": prefix, **counts})
    return deleted
