"""Deployment checks (``manage.py check --deploy``) for what records need to work at all, and
to keep medical files private at rest."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from records import scanner


@checks.register(checks.Tags.files, deploy=True)
def check_records_setup(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    found: list[checks.CheckMessage] = []
    if not scanner.configured():
        found.append(
            checks.Warning(
                "No virus scanner is configured: every uploaded medical file stays quarantined "
                "and nobody can open it.",
                hint="Set CLAMD_HOST (and CLAMD_PORT) or CLAMD_SOCKET.",
                id="records.W001",
            )
        )
    if settings.STORAGE_BACKEND == "local" and not settings.TASK_WORKER_IN_PROCESS:
        found.append(
            checks.Warning(
                "Files are kept on this machine's disk but tasks run in a separate worker, "
                "which scans uploads: it finds none unless it shares the same disk (VAR_DIR).",
                hint="Use STORAGE_BACKEND=s3, or run the worker where it sees the same VAR_DIR "
                "and silence this warning (SILENCED_SYSTEM_CHECKS).",
                id="records.W002",
            )
        )
    if settings.STORAGE_BACKEND == "local":
        found.append(
            checks.Warning(
                "Medical files are kept on this machine's disk unencrypted: local storage has "
                "no encryption at rest (only file permissions keep them private).",
                hint="In production use STORAGE_BACKEND=s3 with server-side encryption "
                "(STORAGE_S3_SSE), or keep VAR_DIR on an encrypted volume and silence this "
                "warning (SILENCED_SYSTEM_CHECKS).",
                id="records.W003",
            )
        )
    grace = settings.RECORDS_ORPHAN_GRACE_SECONDS
    if grace < max(3600, settings.RECORDS_DIRECT_UPLOAD_TTL):
        found.append(
            checks.Error(
                "RECORDS_ORPHAN_GRACE_SECONDS is shorter than an upload may take: the orphan "
                "sweep could delete a file still being uploaded (an S3 object's time is when "
                "its upload started).",
                hint="Set it to at least an hour and at least RECORDS_DIRECT_UPLOAD_TTL.",
                id="records.E001",
            )
        )
    return found
