"""Medical files: upload (through the API, or straight to object storage), list, view,
download, delete, share with a doctor, and staff break-glass access."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pydantic
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.http.response import HttpResponseBase
from ninja import Field, Query, Router, Schema, Status
from ninja.errors import ValidationError

from accounts.auth import AuthedRequest, jwt_auth
from audit.services import client_ip
from core.idempotency import IDEMPOTENCY_KEY, created_once
from core.pagination import paginate
from core.text import refuse_unstorable_text
from records import downloads, selectors, services
from records.errors import FileMissing, InvalidUpload
from records.models import MedicalRecord
from records.schemas import (
    BreakGlassIn,
    BreakGlassOut,
    DirectUploadIn,
    DirectUploadOut,
    DownloadOut,
    GrantIn,
    GrantOut,
    GrantPage,
    RecordIn,
    RecordOut,
    RecordPage,
)
from records.uploads import FILE_FIELD, RecordUploadHandler

router = Router(tags=["records"])

# Audited reads and grants share one rate per user; over it 429 with Retry-After.
_READ_LIMITED = (
    "Rate limited per user (`RECORDS_READ_RATE_LIMIT`): over it 429 `request.rate_limited` "
    "with `Retry-After`."
)


def _origin(request: HttpRequest) -> selectors.Origin:
    return selectors.Origin(
        ip=client_ip(request), user_agent=request.META.get("HTTP_USER_AGENT", "")
    )


def _fields(payload: RecordIn) -> services.RecordFields:
    return services.RecordFields(
        category=payload.category,
        title=payload.title,
        notes=payload.notes,
        record_date=payload.record_date,
    )


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "category", "title"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "category": {
                            "type": "string",
                            "enum": ["lab_result", "imaging", "prescription", "report", "other"],
                        },
                        "title": {"type": "string", "maxLength": 200},
                        "notes": {"type": "string", "maxLength": 5000},
                        "record_date": {"type": "string", "format": "date"},
                        "patient_id": {"type": "string", "format": "uuid"},
                    },
                }
            }
        },
    }
}


@router.post(
    "/records",
    response={201: RecordOut},
    auth=jwt_auth,
    openapi_extra=_UPLOAD_BODY,
    summary="Upload a medical file (multipart); it is scanned before anyone can download it",
)
def upload(
    request: AuthedRequest, idempotency_key: str | None = IDEMPOTENCY_KEY
) -> Status | HttpResponse:
    # Set before the body is parsed: the file streams to a temporary file, hashed and capped.
    request.upload_handlers = [RecordUploadHandler(request)]
    if request.content_type != "multipart/form-data":
        raise InvalidUpload()
    try:
        form, files = request.POST, request.FILES
    except MultiPartParserError as exc:
        raise InvalidUpload() from exc
    file: Any = files.get(FILE_FIELD)
    if file is None:
        raise FileMissing()
    data = {k: v for k, v in form.items() if v != ""}
    # A form is read here, not by the API's parser: its check for unstorable text, here
    # (the file's name is cleaned instead: ``services.sanitize_file_name``).
    refuse_unstorable_text(data)
    try:
        payload = RecordIn.model_validate(data)
    except pydantic.ValidationError as exc:
        raise ValidationError([dict(e) for e in exc.errors()]) from exc
    # The file counts by the digest taken while it streamed to disk: never read twice.
    body = {
        **payload.model_dump(mode="json"),
        FILE_FIELD: {"name": file.name, "size": file.size, "sha256": file.sha256},
    }
    made: list[Any] = []

    def make() -> Any:
        made.append(
            services.record_upload(
                uploader=request.auth,
                patient_id=payload.patient_id,
                fields=_fields(payload),
                upload=file,
                origin=_origin(request),
            )
        )
        return made[-1]

    try:
        return created_once(request, idempotency_key, body, make, RecordOut)
    except BaseException:
        # With a key, the record's transaction is the key's: rolled back after the file was
        # stored (the key's own write, the commit), the file would stay in quarantine.
        for record in made:
            services.upload_discard(record)
        raise


@router.post(
    "/records/uploads",
    response={201: DirectUploadOut},
    auth=jwt_auth,
    summary="Start a direct upload to object storage (S3 only): a presigned POST form",
)
def direct_upload_start(
    request: AuthedRequest, payload: DirectUploadIn, idempotency_key: str | None = IDEMPOTENCY_KEY
) -> Status | HttpResponse:
    def make() -> dict[str, Any]:
        record, form = services.direct_upload_start(
            uploader=request.auth,
            patient_id=payload.patient_id,
            fields=_fields(payload),
            file_name=payload.file_name,
            origin=_origin(request),
        )
        return {"record": record, "upload": form, "expires_at": record.upload_expires_at}

    return created_once(
        request, idempotency_key, payload.model_dump(mode="json"), make, DirectUploadOut
    )


@router.post(
    "/records/break-glass",
    response={201: BreakGlassOut},
    auth=jwt_auth,
    summary="Admins: emergency access to one patient's files, with a reason (audited)",
)
def break_glass(
    request: AuthedRequest, payload: BreakGlassIn, idempotency_key: str | None = IDEMPOTENCY_KEY
) -> Status | HttpResponse:
    return created_once(
        request,
        idempotency_key,
        payload.model_dump(mode="json"),
        lambda: services.break_glass_open(
            staff=request.auth,
            patient_id=payload.patient_id,
            reason=payload.reason,
            origin=_origin(request),
        ),
        BreakGlassOut,
    )


@router.post(
    "/records/{record_id}/complete",
    response=RecordOut,
    auth=jwt_auth,
    summary="Finish a direct upload: the file is checked and queued for its scan",
    description="409 `records.upload_not_received` until the file has arrived, and once the "
    "upload form has expired; 403 `records.not_in_care` once the uploading doctor may no longer "
    "add to the patient's files. A record already finalised is shown, audited, only while its "
    "uploader may see it (else 404). Rate limited per user (`RECORDS_COMPLETE_RATE_LIMIT`): over it "
    "429 `request.rate_limited` with `Retry-After`.",
)
def direct_upload_complete(request: AuthedRequest, record_id: UUID) -> MedicalRecord:
    return services.direct_upload_complete(
        uploader=request.auth, record_id=record_id, origin=_origin(request)
    )


class ListQuery(Schema):
    patient: UUID | None = Field(
        None, description="Doctors and break-glass staff: whose (a patient: only their own id)"
    )
    cursor: str | None = Field(None, max_length=500)
    limit: int = Field(20, ge=1, le=100)


@router.get(
    "/records",
    response=RecordPage,
    auth=jwt_auth,
    summary="Medical files I may see",
    description=_READ_LIMITED,
)
def record_list(request: AuthedRequest, q: Query[ListQuery]) -> dict[str, Any]:
    selectors.read_quota(request.auth)
    qs = selectors.record_list(viewer=request.auth, patient_id=q.patient)
    items, next_cursor = paginate(qs, field="created_at", cursor=q.cursor, limit=q.limit)
    selectors.list_audit(
        viewer=request.auth, patient_id=q.patient, records=items, origin=_origin(request)
    )
    return {"items": items, "next": next_cursor}


@router.get("/records/files/{token}", url_name="records_file", summary="A signed download link")
def record_file(request: HttpRequest, token: str) -> HttpResponseBase:
    return downloads.download_open(token=token, origin=_origin(request))


@router.get(
    "/records/{record_id}",
    response=RecordOut,
    auth=jwt_auth,
    summary="One file's details",
    description=_READ_LIMITED,
)
def record_detail(request: AuthedRequest, record_id: UUID) -> MedicalRecord:
    return selectors.record_get(viewer=request.auth, record_id=record_id, origin=_origin(request))


@router.delete("/records/{record_id}", response={204: None}, auth=jwt_auth, summary="Delete")
def record_delete(request: AuthedRequest, record_id: UUID) -> Status:
    services.record_delete(patient=request.auth, record_id=record_id, origin=_origin(request))
    return Status(204, None)


@router.get(
    "/records/{record_id}/download",
    response=DownloadOut,
    auth=jwt_auth,
    summary="A short-lived download URL (only for files the scan found clean)",
)
def record_download(request: AuthedRequest, record_id: UUID) -> dict[str, Any]:
    url, expires_at = downloads.download_link(
        viewer=request.auth, record_id=record_id, origin=_origin(request)
    )
    return {"url": request.build_absolute_uri(url), "expires_at": expires_at}


@router.get(
    "/records/{record_id}/grants",
    response=GrantPage,
    auth=jwt_auth,
    summary="The doctors the file is shared with (one page: `next` is always null)",
    description=_READ_LIMITED,
)
def grant_list(request: AuthedRequest, record_id: UUID) -> dict[str, Any]:
    grants = selectors.record_grants(
        patient=request.auth, record_id=record_id, origin=_origin(request)
    )
    return {"items": grants, "next": None}


@router.post(
    "/records/{record_id}/grants",
    response={201: GrantOut},
    auth=jwt_auth,
    summary="Share the file with a doctor",
    description=_READ_LIMITED,
)
def grant_create(
    request: AuthedRequest,
    record_id: UUID,
    payload: GrantIn,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> Status | HttpResponse:
    return created_once(
        request,
        idempotency_key,
        payload.model_dump(mode="json"),
        lambda: services.grant_create(
            patient=request.auth,
            record_id=record_id,
            doctor_id=payload.doctor_id,
            origin=_origin(request),
        ),
        GrantOut,
    )


@router.delete(
    "/records/{record_id}/grants/{grant_id}",
    response={204: None},
    auth=jwt_auth,
    summary="Stop sharing the file with that doctor",
)
def grant_revoke(request: AuthedRequest, record_id: UUID, grant_id: UUID) -> Status:
    services.grant_revoke(
        patient=request.auth, record_id=record_id, grant_id=grant_id, origin=_origin(request)
    )
    return Status(204, None)
