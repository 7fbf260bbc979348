"""Directory fixtures built through the real models (geocoding is not needed for them)."""

from __future__ import annotations

import itertools
from typing import Any

from accounts.models import Role
from doctors import geo
from doctors.geocoding import city_key
from doctors.models import Clinic, DoctorProfile, Specialty, Verification
from tests.factories import make_user

_seq = itertools.count(1)


def specialty(
    code: str = "cardiology", en: str = "Cardiology", ar: str = "أمراض القلب"
) -> Specialty:
    return Specialty.objects.get_or_create(code=code, defaults={"name_en": en, "name_ar": ar})[0]


def clinic_at(profile: DoctorProfile, lat: float, lng: float, *, city: str = "Cairo") -> Clinic:
    clinic = Clinic(
        doctor=profile,
        name=f"Clinic {next(_seq)}",
        address="1 Main St",
        city=city,
        city_names=city_key(city),  # as the clinic services save it
        country="EG",
        latitude=lat,
        longitude=lng,
        time_zone="Africa/Cairo",
    )
    for resolution, cell in geo.cells_for(lat, lng).items():
        setattr(clinic, geo.column_for(resolution), cell)
    clinic.save()
    return clinic


def doctor(
    *,
    verified: bool = True,
    lat: float | None = 30.0444,
    lng: float | None = 31.2357,
    specialties: tuple[Specialty, ...] = (),
    **fields: Any,
) -> DoctorProfile:
    first = fields.pop("first_name", "Omar")
    last = fields.pop("last_name", f"Doctor{next(_seq)}")
    user = make_user(role=Role.DOCTOR, first_name=first, last_name=last)
    profile = DoctorProfile.objects.create(
        user=user,
        verification=Verification.VERIFIED if verified else Verification.PENDING,
        **fields,
    )
    profile.specialties.set(specialties)
    if lat is not None and lng is not None:
        clinic_at(profile, lat, lng)
    return profile
