"""Downloads of clean files: a short-lived presigned URL on S3; on local disk, a signed,
expiring link to our own endpoint, which checks access again when it is used. Each is
audited."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core import signing
from django.http import FileResponse
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from core import ratelimit
from records import storage
from records.errors import DownloadLinkInvalid, NotAvailable, RecordNotFound
from records.filetypes import download_name
from records.models import MedicalRecord, ScanStatus
from records.selectors import Origin, audit, record_visible

_SALT = "records.download"


def download_link(*, viewer: User, record_id: Any, origin: Origin) -> tuple[str, datetime]:
    """Where ``viewer`` can fetch the record's file, and until when. 409 unless clean."""
    ratelimit.check("records_link", viewer.pk, settings.ACCOUNT_RATE_LIMITS.get("records_link"))
    record = record_visible(viewer=viewer, record_id=record_id)
    if record.status != ScanStatus.CLEAN or not record.storage_key:
        raise NotAvailable()
    ttl = settings.RECORDS_DOWNLOAD_TTL
    expires_at = timezone.now() + timedelta(seconds=ttl)
    if storage.is_s3():
        url = storage.presigned_get(record.storage_key, content_type=record.content_type, ttl=ttl)
        audit(viewer, "records.downloaded", record, origin, via="presigned_url")
        return url, expires_at
    token = signing.dumps({"r": str(record.pk), "u": str(viewer.pk)}, salt=_SALT)
    audit(viewer, "records.download_link", record, origin)
    return reverse("api:records_file", kwargs={"token": token}), expires_at


def download_open(*, token: str, origin: Origin) -> FileResponse:
    """The file behind a signed link, if the link is fresh and its user may still see the
    record and the record is still clean."""
    try:
        claims = signing.loads(token, salt=_SALT, max_age=settings.RECORDS_DOWNLOAD_TTL)
    except signing.BadSignature as exc:
        raise DownloadLinkInvalid() from exc
    viewer = User.objects.filter(pk=claims.get("u"), is_active=True).first()
    if viewer is None:
        raise DownloadLinkInvalid()
    try:
        record: MedicalRecord = record_visible(viewer=viewer, record_id=claims.get("r"))
    except RecordNotFound as exc:
        raise DownloadLinkInvalid() from exc
    if record.status != ScanStatus.CLEAN or not record.storage_key:
        raise DownloadLinkInvalid()
    audit(viewer, "records.downloaded", record, origin, via="signed_link")
    response = FileResponse(
        storage.open_stream(record.storage_key),
        as_attachment=True,
        filename=download_name(record.file_name, record.content_type),
        content_type=record.content_type,
    )
    response["Content-Length"] = str(record.size)
    response["X-Content-Type-Options"] = "nosniff"
    return response
