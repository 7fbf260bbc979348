"""Reads of the directory: search (with the nearby index), public profiles, the verification
queue. Only verified doctors with active accounts are ever listed publicly."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.db.models import Case, Exists, F, FloatField, OuterRef, Q, QuerySet, Value, When
from django.db.models.functions import Cast
from django.utils import timezone

from accounts.models import User
from accounts.permissions import require_permission
from core.pagination import InvalidCursor, decode_cursor, encode_cursor
from doctors import geo
from doctors.errors import DoctorNotFound, InvalidLocation, UnknownSpecialty
from doctors.index import listed_doctors
from doctors.models import Clinic, DirectoryEntry, DoctorProfile, Specialty, Verification


@dataclass(frozen=True)
class SearchFilters:
    specialty: str = ""
    city: str = ""
    name: str = ""
    language: str = ""
    mode: str = ""
    fee_min: Decimal | None = None
    fee_max: Decimal | None = None
    min_rating: float | None = None
    latitude: float | None = None
    longitude: float | None = None
    radius_km: float = 10.0
    sort: str = ""  # distance | rating | fee | name | next_available; default: distance or rating
    available_on: date | None = None


# Free-slot knowledge lives in bookings, which doctors may not import: the composition root
# plugs it in. ``(doctor ids, a date or None, now) -> {doctor id: first free slot start}``
# for the doctors with a free slot on that date (or, without a date, in the next 14 days).
AVAILABILITY: Callable[[list[Any], date | None, datetime], dict[Any, datetime]] | None = None
# Availability is computed per doctor: it filters and sorts at most this many candidates.
AVAILABILITY_CANDIDATES = 200


def listed() -> QuerySet[DoctorProfile]:
    """Doctors the public may see."""
    return listed_doctors()


def _check_specialty(f: SearchFilters) -> None:
    """An unknown specialty code is a 422, not an empty page. Searches filter by the code
    (joined to the small specialty table), so this costs a query only when nothing matched."""
    if f.specialty and not Specialty.objects.filter(code=f.specialty).exists():
        raise UnknownSpecialty(fields={"specialty": str(UnknownSpecialty.message)})


def _doctor_q(f: SearchFilters, prefix: str = "", *, listing: bool = True) -> Q:
    """The listing rule (unless ``listing`` is off: the row says it already) and the
    doctor-level filters (all but specialty and location), on ``DoctorProfile`` itself or,
    with ``prefix="doctor__"``, on a row that points at one."""
    p = prefix
    q = (
        Q(**{f"{p}verification": Verification.VERIFIED, f"{p}user__is_active": True})
        if listing
        else Q()
    )
    if f.city:
        q &= Q(
            Exists(
                Clinic.objects.filter(
                    doctor_id=OuterRef(f"{p}id" if p else "id"), city__iexact=f.city
                )
            )
        )
    for word in f.name.split()[:4]:
        q &= Q(**{f"{p}user__first_name__icontains": word}) | Q(
            **{f"{p}user__last_name__icontains": word}
        )
    if f.language:
        q &= Q(**{f"{p}languages__contains": f",{f.language},"})
    if f.mode:
        q &= Q(**{f"{p}offers_{f.mode}": True})
    if f.fee_min is not None:
        q &= Q(**{f"{p}fee_minor__gte": int(f.fee_min * 100)})
    if f.fee_max is not None:
        q &= Q(**{f"{p}fee_minor__lte": int(f.fee_max * 100)})
    if f.min_rating is not None:
        q &= Q(
            **{
                f"{p}rating_count__gt": 0,
                f"{p}rating_sum__gte": f.min_rating * F(f"{p}rating_count"),
            }
        )
    return q


def _filtered(f: SearchFilters) -> QuerySet[DoctorProfile]:
    qs = DoctorProfile.objects.filter(_doctor_q(f))
    return qs.filter(specialties__code=f.specialty) if f.specialty else qs


def _with_rating(qs: QuerySet[DoctorProfile]) -> QuerySet[DoctorProfile]:
    return qs.annotate(
        avg_rating=Case(
            When(rating_count=0, then=Value(0.0)),
            default=Cast("rating_sum", FloatField()) / Cast("rating_count", FloatField()),
            output_field=FloatField(),
        )
    )


_ORDER = {
    "rating": ("-avg_rating", "-rating_count", "id"),
    "fee": ("fee_minor", "id"),
    "name": ("user__last_name", "user__first_name", "id"),
}


def doctor_search(
    *, filters: SearchFilters, cursor: str | None, limit: int
) -> tuple[list[DoctorProfile], str | None]:
    """One page of matching doctors, each with ``distance_km`` set when a location is given
    (the distance to their nearest clinic), and the cursor of the next page.

    With a location the H3 index narrows the clinics to a few cells (an indexed ``IN``), the
    exact great-circle distance then filters and orders them: never a scan of all clinics.
    """
    profiles, next_cursor = _search_page(filters, _offset(cursor), limit)
    if not profiles:
        _check_specialty(filters)
    return profiles, next_cursor


def _search_page(
    filters: SearchFilters, offset: int, limit: int
) -> tuple[list[DoctorProfile], str | None]:
    located = filters.latitude is not None and filters.longitude is not None
    if filters.available_on is not None or filters.sort == "next_available":
        return _by_availability(filters, offset, limit, located)
    if located:
        ranked = _nearby(filters)
        sort = filters.sort or "distance"
        if sort != "distance":
            order = _with_rating(listed().filter(id__in=[i for i, _ in ranked])).order_by(
                *_ORDER[sort]
            )
            distances = dict(ranked)
            ranked = [(i, distances[i]) for i in order.values_list("id", flat=True)]
        page = ranked[offset : offset + limit + 1]
        ids = [i for i, _ in page[:limit]]
        profiles = _load(ids)
        for profile, (_, distance) in zip(profiles, page, strict=False):
            profile.distance_km = round(distance, 3)  # type: ignore[attr-defined]
        more = len(page) > limit
    else:
        sort = filters.sort if filters.sort in _ORDER else "rating"
        ids = list(
            _with_rating(_filtered(filters))
            .order_by(*_ORDER[sort])
            .values_list("id", flat=True)[offset : offset + limit + 1]
        )
        more = len(ids) > limit
        profiles = _load(ids[:limit])
    return profiles, encode_cursor([offset + limit, ""]) if more else None


def _offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    offset, _ = decode_cursor(cursor)
    if not isinstance(offset, int) or offset < 0:
        raise InvalidCursor()
    return offset


def _nearby(f: SearchFilters) -> list[tuple[Any, float]]:
    """``[(doctor id, distance km to their nearest matching clinic)]`` within the radius,
    nearest first. With a specialty the candidates come from :class:`DirectoryEntry` (one
    index range per cell, specialty included); without, from the clinics' own cell columns."""
    assert f.latitude is not None and f.longitude is not None
    try:
        resolution, cells = geo.covering(f.latitude, f.longitude, f.radius_km)
    except ValueError as exc:
        raise InvalidLocation() from exc
    column = geo.column_for(resolution)
    if f.specialty:  # the entries say whether the doctor is listed: no join without filters
        source: QuerySet[Any] = DirectoryEntry.objects.filter(
            _doctor_q(f, "doctor__", listing=False), listed=True, specialty__code=f.specialty
        )
    else:
        source = Clinic.objects.filter(_doctor_q(f, "doctor__"))
    rows = source.filter(**{f"{column}__in": cells}).values_list(
        "doctor_id", "latitude", "longitude"
    )
    nearest: dict[Any, float] = {}
    for doctor_id, distance in geo.nearest_first((f.latitude, f.longitude), rows, f.radius_km):
        nearest.setdefault(doctor_id, distance)
    return sorted(nearest.items(), key=lambda item: (item[1], str(item[0])))


CARD_CLINIC_FIELDS = (
    "id",
    "name",
    "address",
    "city",
    "country",
    "latitude",
    "longitude",
    "time_zone",
)


def with_cards(profiles: list[DoctorProfile]) -> list[DoctorProfile]:
    """Give each profile what its public card shows beyond its own row, in two queries for any
    number of profiles: ``card_specialties`` ``[(code, name_en, name_ar)]`` and
    ``card_clinics`` ``[{field: value}]``. (Plain rows: ``prefetch_related`` built a manager
    and cloned querysets per profile, more work than the rest of a search page.)"""
    by_id = {p.id: p for p in profiles}
    for p in profiles:
        p.card_specialties = []  # type: ignore[attr-defined]
        p.card_clinics = []  # type: ignore[attr-defined]
    if not by_id:
        return profiles
    through = DoctorProfile.specialties.through
    for doctor_id, *specialty in (
        through.objects.filter(doctorprofile_id__in=by_id)
        .order_by("specialty__code")
        .values_list(
            "doctorprofile_id", "specialty__code", "specialty__name_en", "specialty__name_ar"
        )
    ):
        by_id[doctor_id].card_specialties.append(tuple(specialty))  # type: ignore[attr-defined]
    for row in (
        Clinic.objects.filter(doctor_id__in=by_id)
        .order_by("name", "id")
        .values("doctor_id", *CARD_CLINIC_FIELDS)
    ):
        by_id[row.pop("doctor_id")].card_clinics.append(row)  # type: ignore[attr-defined]
    return profiles


def _load(ids: list[Any]) -> list[DoctorProfile]:
    """The profiles of a page, in the page's order, with their cards, in three queries."""
    found = {p.id: p for p in DoctorProfile.objects.filter(id__in=ids).select_related("user")}
    return with_cards([found[i] for i in ids if i in found])


def doctor_public(*, doctor_id: Any) -> DoctorProfile:
    profiles = _load([doctor_id]) if listed().filter(id=doctor_id).exists() else []
    if not profiles:
        raise DoctorNotFound()
    return profiles[0]


def doctor_own(*, user: User) -> DoctorProfile:
    """The calling doctor's own profile, whatever its verification status."""
    profile = DoctorProfile.objects.filter(user=user).select_related("user").first()
    if profile is None:
        raise DoctorNotFound()
    return with_cards([profile])[0]


def verification_queue(
    *, viewer: User, status: str = Verification.PENDING
) -> QuerySet[DoctorProfile]:
    require_permission(viewer, "doctors.change_doctorprofile")
    return DoctorProfile.objects.filter(verification=status).select_related("user")


def specialties() -> QuerySet[Specialty]:
    return Specialty.objects.all()


def _by_availability(
    f: SearchFilters, offset: int, limit: int, located: bool
) -> tuple[list[DoctorProfile], str | None]:
    """Searches that need free slots: the first candidates in distance (or rating) order,
    kept if they have a free slot on the date, ordered by their next free slot if asked."""
    if AVAILABILITY is None:
        raise RuntimeError("doctors.selectors.AVAILABILITY is wired in telemed/apps.py")
    ranked: list[tuple[Any, float | None]]
    if located:
        ranked = list(_nearby(f)[:AVAILABILITY_CANDIDATES])
    else:
        ids = _with_rating(_filtered(f)).order_by(*_ORDER["rating"]).values_list("id", flat=True)
        ranked = [(i, None) for i in ids[:AVAILABILITY_CANDIDATES]]
    free = AVAILABILITY([i for i, _ in ranked], f.available_on, timezone.now())
    kept = [(i, d) for i, d in ranked if i in free]
    if f.sort == "next_available":
        kept.sort(key=lambda item: (free[item[0]], str(item[0])))
    page = kept[offset : offset + limit + 1]
    profiles = _load([i for i, _ in page[:limit]])
    for profile, (_, distance) in zip(profiles, page, strict=False):
        profile.distance_km = round(distance, 3) if distance is not None else None  # type: ignore[attr-defined]
        profile.next_available = free[profile.id]  # type: ignore[attr-defined]
    return profiles, encode_cursor([offset + limit, ""]) if len(page) > limit else None
