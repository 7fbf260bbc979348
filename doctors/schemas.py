from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal
from uuid import UUID

from ninja import Field, Schema
from pydantic import StrictBool

from core.schemas import InputSchema, Latitude, Longitude, TimeZoneName
from doctors.geocoding import MAX_QUERY_LENGTH  # what geocoding takes
from doctors.models import Mode, Verification

LANGUAGE_CODE = r"^[a-z]{2}$"


class SpecialtyOut(Schema):
    code: str
    name: str


class SpecialtyList(Schema):
    items: list[SpecialtyOut]
    next: str | None = Field(..., description="Always null: the specialties fit in one page")


class Money(Schema):
    amount: str = Field(..., examples=["250.00"])
    currency: str = Field(..., examples=["EGP"])


class ClinicOut(Schema):
    id: UUID
    name: str
    address: str
    city: str
    country: str
    latitude: float
    longitude: float
    time_zone: str


class DoctorOut(Schema):
    id: UUID
    name: str
    designation: str
    bio: str
    specialties: list[SpecialtyOut]
    languages: list[str]
    fee: Money
    modes: list[Mode]
    years_experience: int
    rating: float | None
    rating_count: int
    clinics: list[ClinicOut]
    distance_km: float | None = None
    next_available: datetime | None = None


class DoctorPage(Schema):
    items: list[DoctorOut]
    next: str | None


class OwnDoctorOut(DoctorOut):
    bio_en: str
    bio_ar: str
    time_zone: str
    verification: Verification
    verification_reason: str


class DoctorProfileIn(InputSchema):
    designation: str | None = Field(None, max_length=120)
    bio_en: str | None = Field(None, max_length=5000)
    bio_ar: str | None = Field(None, max_length=5000)
    specialties: list[Annotated[str, Field(max_length=64)]] | None = Field(None, max_length=10)
    languages: list[Annotated[str, Field(pattern=LANGUAGE_CODE)]] | None = Field(
        None, max_length=10
    )
    fee: Decimal | None = Field(
        None, ge=0, le=100000, decimal_places=3, description="In the currency's units"
    )
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    offers_in_person: StrictBool | None = None
    offers_video: StrictBool | None = None
    offers_chat: StrictBool | None = None
    years_experience: int | None = Field(None, ge=0, le=80, strict=True)
    time_zone: TimeZoneName | None = None


class ClinicIn(InputSchema):
    name: str = Field(..., min_length=1, max_length=120)
    address: str = Field(..., min_length=3, max_length=MAX_QUERY_LENGTH)
    city: str = Field("", max_length=120)
    latitude: Latitude | None = None
    longitude: Longitude | None = None


class ClinicPatch(InputSchema):
    name: str | None = Field(None, min_length=1, max_length=120)
    address: str | None = Field(None, min_length=3, max_length=MAX_QUERY_LENGTH)
    city: str | None = Field(None, max_length=120)
    latitude: Latitude | None = None
    longitude: Longitude | None = None


class VerificationIn(InputSchema):
    decision: Literal["verified", "rejected"]
    reason: str = Field("", max_length=1000)
