"""The directory's part of the personal-data export (``accounts.selectors.user_export``,
wired at the composition root): a doctor's profile and clinics, as the doctor's API shows
them. The document's "doctor" section is bookings' (it adds the booking policy and hours,
which doctors does not know), built on these."""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.utils.translation import get_language

from accounts.models import User
from core import money
from core.export import AuditTargets, Rows, id_texts, iso
from doctors.models import DoctorProfile


def profile_data(user: User, doctor: DoctorProfile) -> dict[str, Any]:
    """``doctor`` read with its specialties prefetched."""
    language = get_language() or "en"
    return {
        "id": str(doctor.id),
        "name": user.full_name,
        "designation": doctor.designation,
        "bio_en": doctor.bio_en,
        "bio_ar": doctor.bio_ar,
        "specialties": [
            {"code": s.code, "name": s.name(language)} for s in doctor.specialties.all()
        ],
        "languages": doctor.language_codes,
        "fee": {
            "amount": money.amount(doctor.fee_minor, doctor.currency),
            "currency": doctor.currency,
        },
        "modes": doctor.modes,
        "years_experience": doctor.years_experience,
        "rating": doctor.rating,
        "rating_count": doctor.rating_count,
        "time_zone": doctor.time_zone,
        "verification": doctor.verification,
        "verification_reason": doctor.verification_reason,
        "verified_at": iso(doctor.verified_at),
    }


def clinics_data(doctor: DoctorProfile) -> list[dict[str, Any]]:
    """``doctor`` read with its clinics prefetched."""
    return [
        {
            "id": str(c.id),
            "name": c.name,
            "address": c.address,
            "city": c.city,
            "country": c.country,
            "latitude": c.latitude,
            "longitude": c.longitude,
            "time_zone": c.time_zone,
        }
        for c in sorted(doctor.clinics.all(), key=lambda c: str(c.pk))
    ]


def audit_targets(user: User, rows: Rows) -> AuditTargets:
    """Events about the user's doctor profile (a verification, an edit by staff)."""
    profile = DoctorProfile.objects.filter(user=user)
    return AuditTargets(events=[Q(target_type="doctor", target_id__in=id_texts(profile))])
