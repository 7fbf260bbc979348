from __future__ import annotations

from datetime import date, datetime
from uuid import UUID

from ninja import Field, Schema

from core.schemas import InputSchema, IsoDate
from records.models import Category, ScanStatus


class RecordIn(InputSchema):
    category: Category
    title: str = Field(..., min_length=1, max_length=200)
    notes: str = Field("", max_length=5000)
    record_date: IsoDate | None = None
    patient_id: UUID | None = Field(None, description="A doctor uploads for a patient in care")


class DirectUploadIn(RecordIn):
    file_name: str = Field(..., min_length=1, max_length=255)


class RecordOut(Schema):
    id: UUID
    patient_id: UUID
    uploaded_by_id: UUID
    category: Category
    title: str
    notes: str
    record_date: date | None
    file_name: str
    content_type: str
    size: int
    sha256: str
    status: ScanStatus
    signature: str
    created_at: datetime
    scanned_at: datetime | None


class RecordPage(Schema):
    items: list[RecordOut]
    next: str | None


class UploadForm(Schema):
    url: str
    fields: dict[str, str]


class DirectUploadOut(Schema):
    record: RecordOut
    upload: UploadForm = Field(
        ..., description="POST the file to `url` as multipart, these fields first, `file` last"
    )
    expires_at: datetime


class DownloadOut(Schema):
    url: str
    expires_at: datetime


class GrantIn(InputSchema):
    doctor_id: UUID


class GrantOut(Schema):
    id: UUID
    doctor_id: UUID
    created_at: datetime


class GrantPage(Schema):
    items: list[GrantOut]
    next: str | None = Field(..., description="Always null: a file's grants fit in one page")


class BreakGlassIn(InputSchema):
    patient_id: UUID
    reason: str = Field(..., max_length=1000)


class BreakGlassOut(Schema):
    id: UUID
    patient_id: UUID
    expires_at: datetime
