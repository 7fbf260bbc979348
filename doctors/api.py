"""The public directory (search, profiles, specialties), the doctor's own profile and
clinics, and the verification queue for staff."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from allauth.core.internal.httpkit import get_authorization_credential
from allauth.core.internal.ratelimit import get_ip
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, HttpResponseNotModified
from django.utils.translation import get_language
from ninja import Field, Query, Router, Schema, Status

from accounts.auth import AuthedRequest, jwt_auth
from accounts.tokens_validation import validate_access_token
from core import money
from core.cache import best_effort
from core.idempotency import IDEMPOTENCY_KEY, created_once
from core.pagination import paginate
from core.responses import dumps
from core.schemas import IsoDate
from doctors import selectors, services
from doctors.errors import InvalidLocation
from doctors.models import DoctorProfile, Mode, Verification
from doctors.schemas import (
    ClinicIn,
    ClinicOut,
    ClinicPatch,
    DoctorOut,
    DoctorPage,
    DoctorProfileIn,
    OwnDoctorOut,
    SpecialtyList,
    VerificationIn,
)

router = Router(tags=["directory"])
CACHE_SECONDS = 300
# Pages that show free slots (``available_on``, ``sort=next_available``) also change with every
# booking and cancellation, which do not invalidate the directory (the booking itself checks
# the slot): they are kept this long at most. Changes to hours and time off do invalidate.
AVAILABILITY_CACHE_SECONDS = 30


def _card_out(card: selectors.Card, language: str) -> dict[str, Any]:
    """A directory card, ready for JSON (the shape of ``DoctorOut``, built directly: pydantic's
    validation cost more than the rest of a page; a test holds the two equal)."""
    arabic = language == "ar"
    return {
        "id": card.id,
        "name": card.name,
        "designation": card.designation,
        "bio": (card.bio_ar or card.bio_en) if arabic else (card.bio_en or card.bio_ar),
        "specialties": [
            {"code": code, "name": ar if arabic else en} for code, en, ar in card.specialties
        ],
        "languages": card.languages,
        "fee": {"amount": money.amount(card.fee_minor, card.currency), "currency": card.currency},
        "modes": card.modes,
        "years_experience": card.years_experience,
        "rating": card.rating,
        "rating_count": card.rating_count,
        "clinics": card.clinics,
        "distance_km": card.distance_km,
        "next_available": card.next_available,
    }


def _cached_json(
    request: HttpRequest, key_parts: dict[str, Any], build: Any, seconds: int = CACHE_SECONDS
) -> HttpResponse:
    """A public answer served from the cache (for ``seconds`` at most) with a strong ETag;
    ``If-None-Match`` gets 304.

    An answer is stored with the directory's version at the time; it is served only while
    that is still the version, so any change invalidates it. One round trip reads both (a
    miss adds the one that stores the answer)."""
    raw = json.dumps({**key_parts, "lang": get_language()}, sort_keys=True, default=str)
    key = f"directory:page:{hashlib.sha256(raw.encode()).hexdigest()}"
    found = best_effort(cache.get_many, [services.CACHE_VERSION_KEY, key], what="directory cache")
    version = None
    if found is not None:  # else Redis is away: answered, not stored
        version = found.get(services.CACHE_VERSION_KEY) or best_effort(
            services.directory_version, what="directory cache"
        )
    stored = (found or {}).get(key)
    if stored is not None and stored[0] == version:
        body = stored[1]
    else:
        body = dumps(build())
        if version is not None:
            best_effort(cache.set, key, (version, body), seconds, what="directory cache")
    etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
    if _matches(request.headers.get("If-None-Match", ""), etag):
        response: HttpResponse = HttpResponseNotModified()
    else:
        response = HttpResponse(body, content_type="application/json")
    response["ETag"] = etag
    response["Cache-Control"] = f"public, max-age={seconds // 5}"
    # the language comes from Accept-Language, or LocaleMiddleware's cookie
    response["Vary"] = "Accept-Language, Cookie"
    return response


def _matches(if_none_match: str, etag: str) -> bool:
    """``If-None-Match`` by weak comparison (RFC 9110: ``W/"x"`` matches ``"x"``), ``*``
    matching any current answer."""
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or etag in [t.removeprefix("W/") for t in tags]


class SearchQuery(Schema):
    specialty: str = Field("", max_length=64)
    city: str = Field("", max_length=120)
    name: str = Field("", max_length=100)
    language: str = Field("", pattern=r"^([a-z]{2})?$")
    mode: Mode | None = None
    fee_min: Decimal | None = Field(None, ge=0, le=100000)
    fee_max: Decimal | None = Field(None, ge=0, le=100000)
    currency: str = Field(
        "",
        pattern=r"^([A-Z]{3})?$",
        description="Only doctors whose fee is in this currency (ISO 4217); fee_min and "
        "fee_max are then amounts of it. Without it, each doctor's fee is read in its own.",
    )
    min_rating: float | None = Field(None, ge=1, le=5)
    lat: float | None = Field(None, ge=-90, le=90)
    lng: float | None = Field(None, ge=-180, le=180)
    near: str | None = Field(None, max_length=200, description="A place name or address, geocoded")
    radius_km: float = Field(10, ge=0, le=500)
    sort: Literal["distance", "rating", "fee", "name", "next_available"] | None = None
    available_on: IsoDate | None = Field(
        None,
        description="Only doctors with a free slot that day (their zone). Each request looks "
        "at a bounded number of candidates: a page may then hold fewer than `limit` doctors "
        "(even none) with a `next` cursor that goes on with the rest; follow `next` until it "
        "is null.",
    )
    # A cursor keeps the last row's sort key: two names of up to 150 letters each, for
    # sort=name (Arabic letters travel escaped), fit in 2,048 characters.
    cursor: str | None = Field(None, max_length=2048)
    limit: int = Field(20, ge=1, le=50)


@router.get(
    "/doctors",
    response=DoctorPage,
    summary="Search verified doctors, optionally near a point or place",
)
def search(request: HttpRequest, q: Query[SearchQuery]) -> HttpResponse:
    if (q.lat is None) != (q.lng is None):
        raise InvalidLocation(
            fields={"lat" if q.lat is None else "lng": str(InvalidLocation.message)}
        )
    if q.sort == "distance" and q.lat is None and q.near is None:
        raise InvalidLocation(fields={"sort": str(InvalidLocation.message)})
    lat, lng = q.lat, q.lng
    if q.near is not None:
        from doctors.geocoding import geocode, google_quota

        place = geocode(
            q.near,
            language=get_language() or "en",
            quota=lambda: google_quota(_quota_holder(request)),
        )
        lat, lng = place.latitude, place.longitude
    filters = selectors.SearchFilters(
        specialty=q.specialty,
        city=q.city.strip(),
        name=q.name.strip(),
        language=q.language,
        mode=q.mode.value if q.mode else "",
        fee_min=q.fee_min,
        fee_max=q.fee_max,
        currency=q.currency,
        min_rating=q.min_rating,
        latitude=lat,
        longitude=lng,
        radius_km=q.radius_km,
        sort=q.sort or "",
        available_on=q.available_on,
    )

    def build() -> dict[str, Any]:
        found, next_cursor = selectors.doctor_search(
            filters=filters, cursor=q.cursor, limit=q.limit
        )
        language = get_language() or "en"
        return {"items": [_card_out(card, language) for card in found], "next": next_cursor}

    return _cached_json(
        request,
        {"search": filters.__dict__, "cursor": q.cursor, "limit": q.limit},
        build,
        AVAILABILITY_CACHE_SECONDS
        if filters.available_on is not None or filters.sort == "next_available"
        else CACHE_SECONDS,
    )


def _quota_holder(request: HttpRequest) -> str:
    """Whose geocoding quota a search that Google must answer counts against: the user its
    access token names (checked only then: a search needs no sign-in), else its client
    address (allauth's rule: behind our proxies, the address the outermost one saw; an IPv6
    client's network)."""
    token = get_authorization_credential(request, "Bearer")
    found = validate_access_token(token) if token else None
    return f"user:{found[1].id}" if found is not None else f"ip:{get_ip(request)}"


@router.get(
    "/doctors/{doctor_id}", response=DoctorOut, summary="A verified doctor's public profile"
)
def doctor(request: HttpRequest, doctor_id: UUID) -> HttpResponse:
    def build() -> dict[str, Any]:
        card = selectors.doctor_public(doctor_id=doctor_id)
        return _card_out(card, get_language() or "en")

    return _cached_json(request, {"doctor": str(doctor_id)}, build)


@router.get(
    "/specialties",
    response=SpecialtyList,
    summary="Specialties, named in the request's language (one page: `next` is always null)",
)
def specialties(request: HttpRequest) -> dict[str, Any]:
    language = get_language() or "en"
    items = [{"code": s.code, "name": s.name(language)} for s in selectors.specialties()]
    return {"items": items, "next": None}


# --- the calling doctor -----------------------------------------------------------------
def _own_out(profile: DoctorProfile, card: selectors.Card | None = None) -> dict[str, Any]:
    card = card or selectors.cards([profile.id])[0]
    return {
        **_card_out(card, get_language() or "en"),
        "bio_en": profile.bio_en,
        "bio_ar": profile.bio_ar,
        "time_zone": profile.time_zone,
        "verification": profile.verification,
        "verification_reason": profile.verification_reason,
    }


@router.get(
    "/doctor/profile",
    response=OwnDoctorOut,
    auth=jwt_auth,
    summary="The calling doctor's own profile",
)
def own_profile(request: AuthedRequest) -> dict[str, Any]:
    services.doctor_profile_ensure(user=request.auth)
    return _own_out(selectors.doctor_own(user=request.auth))


@router.patch(
    "/doctor/profile",
    response=OwnDoctorOut,
    auth=jwt_auth,
    summary="Edit the calling doctor's profile",
)
def own_profile_update(request: AuthedRequest, payload: DoctorProfileIn) -> dict[str, Any]:
    changes = payload.model_dump(exclude_unset=True, exclude_none=True)
    services.doctor_profile_update(user=request.auth, changes=changes)
    return _own_out(selectors.doctor_own(user=request.auth))


@router.post(
    "/doctor/clinics",
    response={201: ClinicOut},
    auth=jwt_auth,
    summary="Add a clinic (address geocoded)",
)
def clinic_create(
    request: AuthedRequest,
    payload: ClinicIn,
    idempotency_key: str | None = IDEMPOTENCY_KEY,
) -> Status | HttpResponse:
    return created_once(
        request,
        idempotency_key,
        payload,
        lambda: services.clinic_create(user=request.auth, **payload.model_dump()),
        ClinicOut,
    )


@router.patch(
    "/doctor/clinics/{clinic_id}", response=ClinicOut, auth=jwt_auth, summary="Edit a clinic"
)
def clinic_update(request: AuthedRequest, clinic_id: UUID, payload: ClinicPatch) -> Any:
    changes = payload.model_dump(exclude_unset=True, exclude_none=True)
    return services.clinic_update(user=request.auth, clinic_id=clinic_id, changes=changes)


@router.delete(
    "/doctor/clinics/{clinic_id}", response={204: None}, auth=jwt_auth, summary="Remove a clinic"
)
def clinic_delete(request: AuthedRequest, clinic_id: UUID) -> Status:
    services.clinic_delete(user=request.auth, clinic_id=clinic_id)
    return Status(204, None)


# --- staff: verification ------------------------------------------------------------------
class QueueQuery(Schema):
    status: Verification = Verification.PENDING
    cursor: str | None = Field(None, max_length=500)
    limit: int = Field(50, ge=1, le=100)


class QueueItem(OwnDoctorOut):
    email: str | None


class QueuePage(Schema):
    items: list[QueueItem]
    next: str | None


@router.get(
    "/admin/verifications",
    response=QueuePage,
    auth=jwt_auth,
    tags=["admin"],
    summary="Doctors by verification status (the approval queue)",
)
def verification_queue(request: AuthedRequest, q: Query[QueueQuery]) -> dict[str, Any]:
    qs = selectors.verification_queue(viewer=request.auth, status=q.status)
    # the longest waiting first
    items, next_cursor = paginate(
        qs, field="updated_at", cursor=q.cursor, limit=q.limit, descending=False
    )
    # Paired by id: a profile deleted since the page was read has no card, and is left out.
    found = {card.id: card for card in selectors.cards([p.id for p in items])}
    return {
        "items": [
            {**_own_out(p, found[str(p.id)]), "email": p.user.email}
            for p in items
            if str(p.id) in found
        ],
        "next": next_cursor,
    }


@router.post(
    "/admin/verifications/{doctor_id}",
    response=OwnDoctorOut,
    auth=jwt_auth,
    tags=["admin"],
    summary="Verify or reject a doctor",
)
def verification_decide(
    request: AuthedRequest, doctor_id: UUID, payload: VerificationIn
) -> dict[str, Any]:
    profile = services.doctor_verify(
        actor=request.auth, doctor_id=doctor_id, decision=payload.decision, reason=payload.reason
    )
    return _own_out(selectors.doctor_own(user=profile.user))
