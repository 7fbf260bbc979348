from __future__ import annotations

from datetime import datetime, time
from typing import Any
from uuid import UUID

from ninja import Field, Schema

from bookings.models import Status
from core.schemas import InputSchema, IsoDate, IsoDatetime, WallEnd, WallTime
from doctors.models import Mode


class SlotOut(Schema):
    start: datetime = Field(..., description="In the viewer's time zone (the tz parameter)")
    end: datetime
    start_utc: datetime
    mode: Mode
    clinic_id: UUID | None


class SlotsOut(Schema):
    time_zone: str
    next: str | None = Field(..., description="Always null: the range asked is one page")
    items: list[SlotOut]


class BookIn(InputSchema):
    doctor_id: UUID
    start: IsoDatetime
    mode: Mode
    clinic_id: UUID | None = None
    reason: str = Field("", max_length=2000)


class HistoryOut(Schema):
    status: Status
    at: datetime
    reason: str

    @staticmethod
    def resolve_reason(obj: Any) -> str:
        return str(obj.shown_reason)


class AppointmentOut(Schema):
    id: UUID
    doctor_id: UUID
    doctor_name: str
    patient_id: UUID
    patient_name: str
    clinic_id: UUID | None
    mode: Mode
    start: datetime
    end: datetime
    status: Status
    reason: str | None = Field(
        ..., description="Null for staff in lists and dashboards: they read it in the detail"
    )
    hold_expires_at: datetime | None
    rescheduled_from: UUID | None = Field(
        None, description="The appointment this one replaced: a reschedule cancelled it"
    )


class AppointmentDetail(AppointmentOut):
    history: list[HistoryOut]


class AppointmentPage(Schema):
    items: list[AppointmentOut]
    next: str | None


class ReasonIn(InputSchema):
    reason: str = Field("", max_length=500)


class HoursIn(InputSchema):
    start: WallTime = Field(
        ..., description="HH:MM in the clinic's zone (the profile's without one)"
    )
    end: WallEnd = Field(
        ..., description="HH:MM; 24:00 (or 00:00) is the midnight that ends the day"
    )
    mode: Mode
    clinic_id: UUID | None = None
    slot_minutes: int = Field(30, ge=5, le=480, strict=True)
    buffer_minutes: int = Field(0, ge=0, le=240, strict=True)


class RuleIn(HoursIn):
    weekday: int = Field(..., ge=0, le=6, strict=True)


class HoursPatch(InputSchema):
    """Only what changes; the result is checked as new hours would be."""

    start: WallTime | None = None
    end: WallEnd | None = None
    mode: Mode | None = None
    clinic_id: UUID | None = None
    slot_minutes: int | None = Field(None, ge=5, le=480, strict=True)
    buffer_minutes: int | None = Field(None, ge=0, le=240, strict=True)


class RulePatch(HoursPatch):
    weekday: int | None = Field(None, ge=0, le=6, strict=True)


class ExtraHoursIn(HoursIn):
    date: IsoDate


class ExtraHoursPatch(HoursPatch):
    date: IsoDate | None = None


class ExtraHoursOut(ExtraHoursIn):
    id: UUID


class RuleOut(Schema):
    id: UUID
    weekday: int
    start: time
    end: time = Field(..., description="00:00 is the midnight that ends the day")
    mode: Mode
    clinic_id: UUID | None
    slot_minutes: int
    buffer_minutes: int


class TimeOffIn(InputSchema):
    start: IsoDatetime
    end: IsoDatetime
    reason: str = Field("", max_length=200)


class TimeOffPatch(InputSchema):
    """Only what changes; the result is checked as new time off would be."""

    start: IsoDatetime | None = None
    end: IsoDatetime | None = None
    reason: str | None = Field(None, max_length=200)


class TimeOffOut(Schema):
    id: UUID
    start: datetime
    end: datetime
    reason: str


class RulePage(Schema):
    items: list[RuleOut]
    next: str | None = Field(..., description="Always null: a doctor keeps at most 100 rules")


class ExtraHoursPage(Schema):
    items: list[ExtraHoursOut]
    next: str | None


class TimeOffPage(Schema):
    items: list[TimeOffOut]
    next: str | None
