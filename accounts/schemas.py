from __future__ import annotations

import re
from datetime import date, datetime
from uuid import UUID

from django.utils import timezone
from django.utils.translation import gettext as _
from ninja import Field, Schema
from pydantic import field_validator

from accounts.models import Language, Role, Sex
from core.schemas import InputSchema, IsoDate, Latitude, Longitude, TimeZoneName


class PatientProfileOut(Schema):
    date_of_birth: date | None
    sex: str
    city: str
    latitude: float | None
    longitude: float | None


class MeOut(Schema):
    id: UUID
    email: str | None
    phone: str | None
    phone_verified: bool
    first_name: str
    last_name: str
    role: Role
    language: Language
    time_zone: str
    must_change_password: bool
    date_joined: datetime
    patient_profile: PatientProfileOut | None = None


class MeIn(InputSchema):
    first_name: str | None = Field(None, max_length=150)
    last_name: str | None = Field(None, max_length=150)
    language: Language | None = None
    time_zone: TimeZoneName | None = None
    date_of_birth: IsoDate | None = None
    sex: Sex | None = None
    city: str | None = Field(None, max_length=120)
    latitude: Latitude | None = None
    longitude: Longitude | None = None

    @field_validator("date_of_birth")
    @classmethod
    def _past(cls, value: date | None) -> date | None:
        if value is not None and not (date(1900, 1, 1) <= value <= timezone.localdate()):
            raise ValueError(_("Enter a date of birth in the past."))
        return value


class SecondFactorIn(InputSchema):
    code: str = Field(pattern=r"^[0-9]{6,8}$", description="The authenticator app's code")


class DeleteAccountIn(InputSchema):
    password: str = Field("", max_length=256)
    confirm: str = Field(
        "", max_length=64, description='For accounts without a password: "delete my account".'
    )


class UserOut(Schema):
    id: UUID
    email: str | None
    phone: str | None
    first_name: str
    last_name: str
    role: Role
    language: Language
    time_zone: str
    is_active: bool
    must_change_password: bool
    date_joined: datetime
    last_login: datetime | None


class UserPage(Schema):
    items: list[UserOut]
    next: str | None


class UserAdminIn(InputSchema):
    first_name: str | None = Field(None, max_length=150)
    last_name: str | None = Field(None, max_length=150)
    role: Role | None = None
    language: Language | None = None
    time_zone: TimeZoneName | None = None


class DoctorCreateIn(InputSchema):
    email: str = Field(..., max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    first_name: str = Field(..., min_length=1, max_length=150)
    last_name: str = Field(..., min_length=1, max_length=150)


class DoctorCreatedOut(Schema):
    user: UserOut
    temporary_password: str


_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")  # as DoctorCreateIn's pattern


class InvitationIn(InputSchema):
    email: str = Field("", max_length=254, description="Only this address may redeem it.")
    ttl_days: int = Field(7, ge=1, le=30, strict=True)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str) -> str:
        # Compared with the address a doctor signs up with (stored lower-case): a space or a
        # typo would make the invitation one nobody can ever redeem.
        value = value.strip().lower()
        if value and not _EMAIL_RE.match(value):
            raise ValueError(_("Enter a valid e-mail address."))
        return value


class InvitationOut(Schema):
    id: UUID
    code: str
    email: str
    expires_at: datetime


class AuditEventOut(Schema):
    id: int
    created_at: datetime
    actor_id: UUID | None
    actor_role: str
    action: str
    target_type: str
    target_id: str
    ip: str | None
    data: dict


class AuditPage(Schema):
    items: list[AuditEventOut]
    next: str | None
