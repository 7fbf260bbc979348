"""Reads of the directory: search (with the nearby index), public profiles, the verification
queue. Only verified doctors with active accounts are ever listed publicly."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple
from uuid import UUID

from django.db import connection
from django.db.models import (
    BigIntegerField,
    Case,
    Exists,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.functions import Cast
from django.db.models.lookups import GreaterThanOrEqual
from django.utils import timezone

from accounts.models import User, full_name
from accounts.permissions import require_permission
from core import money
from core.pagination import InvalidCursor, decode_cursor, encode_cursor
from doctors import geo, queries
from doctors.errors import DoctorNotFound, InvalidLocation, UnknownSpecialty
from doctors.index import listed_doctors, listing_q
from doctors.models import (
    Clinic,
    DirectoryEntry,
    DoctorProfile,
    Specialty,
    Verification,
    average_rating,
    language_codes,
    offered_modes,
)


@dataclass(frozen=True)
class SearchFilters:
    specialty: str = ""
    city: str = ""
    name: str = ""
    language: str = ""
    mode: str = ""
    fee_min: Decimal | None = None
    fee_max: Decimal | None = None
    currency: str = ""  # fees are compared within one currency when one is given
    min_rating: float | None = None
    latitude: float | None = None
    longitude: float | None = None
    radius_km: float = 10.0
    sort: str = ""  # distance | rating | fee | name | next_available; default: distance or rating
    available_on: date | None = None


# Free-slot knowledge lives in bookings, which doctors may not import: the composition root
# plugs it in. ``(doctor ids, a date or None, now) -> {doctor id: first free slot start}``
# for the doctors with a free slot on that date (or, without a date, in the next 14 days).
AVAILABILITY: Callable[[list[Any], date | None, datetime, str], dict[Any, datetime]] | None = None
# Availability is worked out per doctor, for candidates taken in the order asked for, this
# many at a time, until the page is full; and at most AVAILABILITY_SCANNED candidates per
# request: a page that the budget leaves short still has a cursor, after the last candidate
# looked at. next_available ranks the first that many by time: a cursor in the candidates'
# order cannot go on with a ranking by time, so the doctors beyond them are not ranked.
AVAILABILITY_CANDIDATES = 200
AVAILABILITY_SCANNED = 1000


def listed() -> QuerySet[DoctorProfile]:
    """Doctors the public may see."""
    return listed_doctors()


def _check_specialty(f: SearchFilters) -> None:
    """An unknown specialty code is a 422, not an empty page. Searches filter by the code
    (joined to the small specialty table), so this costs a query only when nothing matched."""
    if f.specialty and not Specialty.objects.filter(code=f.specialty).exists():
        raise UnknownSpecialty(fields={"specialty": str(UnknownSpecialty.message)})


def _city_q(city: str, prefix: str = "") -> Q:
    """The clinics in ``city`` (by the name given or any name the city goes by), on
    ``Clinic`` itself or, with ``prefix="clinic__"``, on a row that points at one."""
    from doctors.geocoding import name_key

    return Q(**{f"{prefix}city__iexact": city}) | Q(
        **{f"{prefix}city_names__contains": f",{name_key(city)},"}
    )


def _doctor_q(f: SearchFilters, prefix: str = "", *, listing: bool = True, city: bool = True) -> Q:
    """The listing rule (unless ``listing`` is off: the row says it already) and the
    doctor-level filters (all but specialty and location), on ``DoctorProfile`` itself or,
    with ``prefix="doctor__"``, on a row that points at one. The city is a clinic of the
    doctor's in it, unless ``city`` is off: a nearby search tests it on the very clinics it
    measures (:func:`_nearby`), or a doctor with a clinic in the city and another near the
    point would be found at the distance of the other."""
    p = prefix
    q = listing_q(p) if listing else Q()
    if f.city and city:
        q &= Q(
            Exists(
                Clinic.objects.filter(_city_q(f.city), doctor_id=OuterRef(f"{p}id" if p else "id"))
            )
        )
    if f.name:
        from doctors.geocoding import normalise

        for word in normalise(f.name).split()[:4]:  # folded as search_name is
            # The article goes from stored words of 4 letters and more; a shorter word typed
            # so far ("الح" of "الحسن") drops it too.
            word = word.removeprefix("ال") or word
            q &= Q(**{f"{p}search_name__contains": word})
    if f.language:
        q &= Q(**{f"{p}languages__contains": f",{f.language},"})
    if f.mode:
        q &= Q(**{f"{p}offers_{f.mode}": True})
    if f.currency:
        q &= Q(**{f"{p}currency": f.currency})
    for lookup, value in (("gte", f.fee_min), ("lte", f.fee_max)):
        if value is not None:  # in each doctor's own currency (one when ``currency`` is given)
            q &= money.compare(f"{p}fee_minor", f"{p}currency", lookup, value)
    if f.min_rating is not None:
        # The rating as shown (models.average_rating: hundredths, rounded half up) at least
        # the threshold, in integers: in floats 4.4 * 25 is 110.00000000000001, and a 4.4
        # doctor was not "4.4 and up"; and 1099/250 = 4.396, shown 4.4, was not either when
        # the exact average was compared. Shown = floor((200 sum + count) / (2 count))
        # hundredths, an integer: it is at least the threshold's hundredths (rounded up)
        # exactly when 200 sum + count >= 2 count * threshold.
        hundredths = math.ceil(Decimal(str(f.min_rating)) * 100)
        rating_sum, rating_count = (
            Cast(F(f"{p}{column}"), BigIntegerField()) for column in ("rating_sum", "rating_count")
        )
        q &= Q(**{f"{p}rating_count__gt": 0}) & Q(
            GreaterThanOrEqual(rating_sum * 200 + rating_count, rating_count * (2 * hundredths))
        )
    return q


def _filtered(f: SearchFilters) -> QuerySet[DoctorProfile]:
    qs = DoctorProfile.objects.filter(_doctor_q(f))
    return qs.filter(specialties__code=f.specialty) if f.specialty else qs


def _with_rating(qs: QuerySet[DoctorProfile]) -> QuerySet[DoctorProfile]:
    """With the columns the sorts order by: the average rating, and the fee in thousandths
    of its own currency (``money.sort_key``: as the fee filters read it)."""
    return qs.annotate(
        fee_units=money.sort_key("fee_minor", "currency"),
        avg_rating=Case(
            When(rating_count=0, then=Value(0.0)),
            default=Cast("rating_sum", FloatField()) / Cast("rating_count", FloatField()),
            output_field=FloatField(),
        ),
    )


# Each sort's columns: (column, descending, how a cursor's value of it is read back).
_ORDER_KEYS: dict[str, tuple[tuple[str, bool, Callable[[Any], Any]], ...]] = {
    "rating": (("avg_rating", True, float), ("rating_count", True, int), ("id", False, UUID)),
    "fee": (("fee_units", False, int), ("id", False, UUID)),
    "name": (
        ("user__last_name", False, lambda v: _text(v)),
        ("user__first_name", False, lambda v: _text(v)),
        ("id", False, UUID),
    ),
}
_ORDER = {
    sort: tuple(("-" if desc else "") + column for column, desc, _ in keys)
    for sort, keys in _ORDER_KEYS.items()
}


def doctor_search(
    *, filters: SearchFilters, cursor: str | None, limit: int
) -> tuple[list[Card], str | None]:
    """One page of matching doctors' cards, each with ``distance_km`` set when a location is
    given (the distance to their nearest clinic), and the cursor of the next page.

    With a location the H3 index narrows the clinics to a few cells (an indexed ``IN``), the
    exact great-circle distance then filters and orders them: never a scan of all clinics.
    """
    page, next_cursor = _search_page(filters, _position(cursor), limit)
    if not page:
        _check_specialty(filters)
    return page, next_cursor


def _search_page(
    filters: SearchFilters, position: tuple[int, Any], limit: int
) -> tuple[list[Card], str | None]:
    """One page. A cursor remembers the sort key of the last row shown (see ``Ranked``) and
    the next page starts at the first row whose key is greater: doctors listed, delisted or
    moved meanwhile repeat or hide nobody else. Cursors of before carry an offset only."""
    located = filters.latitude is not None and filters.longitude is not None
    if filters.available_on is not None or filters.sort == "next_available":
        return _by_availability(filters, position, limit, located)
    offset, after = position[0], _keyset(position)
    start = offset if after is None else 0
    if located:
        page = _ranked_nearby(filters, after)[start : start + limit + 1]
    else:
        page = _ranked(filters, after, start, limit + 1)
    return _public_cards(page[:limit]), _next_cursor(offset + limit, page, limit)


def _public_cards(rows: list[Ranked]) -> list[Card]:
    """The cards of these ranked doctors still listed, in their order, each with its own
    row's distance (paired by id: a doctor gone meanwhile has no card)."""
    found = cards([row.id for row in rows], listed_only=True)
    distances = {row.id: row.distance for row in rows}
    for card in found:
        distance = distances[card.id]
        card.distance_km = round(distance, 3) if distance is not None else None
    return found


class Ranked(NamedTuple):
    """A doctor in a ranked list: their id, distance (with a location) and sort key (the
    values a cursor keeps: the sort columns, else ``[distance, id]``)."""

    id: str
    distance: float | None
    key: list[Any]


def _ranked(f: SearchFilters, after: list[Any] | None, skip: int, count: int) -> list[Ranked]:
    """Listed doctors in the SQL order asked for (rating unless fee or name), after the row
    whose sort values are ``after`` (a keyset), else from ``skip``."""
    sort = f.sort if f.sort in _ORDER else "rating"
    keys = _ORDER_KEYS[sort]
    ordered = _with_rating(_filtered(f)).order_by(*_ORDER[sort])
    if after is not None:
        ordered = ordered.filter(_after(keys, _key_values(keys, after)))
        skip = 0
    rows = ordered.values_list(*(column for column, _, _ in keys))[skip : skip + count]
    return [Ranked(str(row[-1]), None, _plain(row)) for row in rows]


def _ranked_nearby(f: SearchFilters, after: list[Any] | None) -> list[Ranked]:
    """The nearby doctors in the order asked for (distance unless rating, fee or name), after
    the row whose sort key is ``after``."""
    nearby = _nearby(f)  # nearest first: distance, then id (as text)
    if f.sort not in _ORDER:
        ranked = [Ranked(i, d, [d, i]) for i, d in nearby]
        if after is None:
            return ranked
        try:
            last = (float(after[0]), str(after[1])) if len(after) == 2 else None
        except (TypeError, ValueError) as exc:
            raise InvalidCursor() from exc
        if last is None:
            raise InvalidCursor()
        return [row for row in ranked if (row.distance, row.id) > last]
    keys = _ORDER_KEYS[f.sort]
    distances = dict(nearby)
    ordered = _with_rating(listed().filter(id__in=list(distances))).order_by(*_ORDER[f.sort])
    if after is not None:
        ordered = ordered.filter(_after(keys, _key_values(keys, after)))
    return [
        Ranked(str(row[-1]), distances[str(row[-1])], _plain(row))
        for row in ordered.values_list(*(column for column, _, _ in keys))
    ]


def _plain(row: Sequence[Any]) -> list[Any]:
    """Sort values as a cursor keeps them: numbers as they are, the rest (ids) as text."""
    return [v if isinstance(v, float | int) else str(v) for v in row]


def _next_cursor(offset: int, page: list[Ranked], limit: int) -> str | None:
    """The next page's cursor, if there is a next page: the sort key of the page's last row,
    and the offset the cursors of before used."""
    if len(page) <= limit:
        return None
    return encode_cursor([offset, page[limit - 1].key], scope="doctors.search")


def _position(cursor: str | None) -> tuple[int, Any]:
    """``(offset, sort key of the last row shown)`` of a search cursor ("" for the key in the
    cursors of before)."""
    if not cursor:
        return 0, ""
    offset, last = decode_cursor(cursor, scope="doctors.search")
    if not isinstance(offset, int) or not 0 <= offset <= _MAX_OFFSET:
        raise InvalidCursor()
    if not isinstance(last, str | list):
        raise InvalidCursor()
    return offset, last


_MAX_OFFSET = 1_000_000  # beyond every listing (an OFFSET that large overflowed: a 500)


def _keyset(position: tuple[int, Any]) -> list[Any] | None:
    return position[1] if isinstance(position[1], list) else None


def _text(value: Any) -> str:
    """A text sort value of a cursor, as the database can take it."""
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("not a text value")
    value.encode("utf-8")  # a lone surrogate: UnicodeEncodeError, a ValueError
    return value


def _key_values(keys: tuple[tuple[str, bool, Callable[[Any], Any]], ...], values: list) -> list:
    """A keyset cursor's values, each read as its column's type (a forged one: 4xx)."""
    if len(values) != len(keys):
        raise InvalidCursor()
    try:
        return [read(v) for (_, _, read), v in zip(keys, values, strict=True)]
    except (TypeError, ValueError, ArithmeticError, AttributeError) as exc:
        raise InvalidCursor() from exc


def _after(keys: tuple[tuple[str, bool, Callable[[Any], Any]], ...], values: list) -> Q:
    """The rows that come after ``values`` in the order of ``keys`` (lexicographic, each
    column in its own direction)."""
    after, same = Q(), Q()
    for (column, desc, _), value in zip(keys, values, strict=True):
        after |= same & Q(**{f"{column}__{'lt' if desc else 'gt'}": value})
        same &= Q(**{column: value})
    return after


def _nearby(f: SearchFilters) -> list[tuple[str, float]]:
    """``[(doctor id, distance km to their nearest matching clinic)]`` within the radius,
    nearest first (with a city, their nearest clinic in it). With a specialty the candidates come from :class:`DirectoryEntry` (one
    index range per cell, specialty included); without, from the clinics' own cell columns."""
    assert f.latitude is not None and f.longitude is not None
    try:
        resolution, cells = geo.covering(f.latitude, f.longitude, f.radius_km)
    except ValueError as exc:
        raise InvalidLocation() from exc
    # The city is tested on the candidate clinics themselves: those the distance is of.
    doctor_filters = _doctor_q(f, "doctor__", listing=False, city=False)
    rows: Iterable[tuple[Any, float, float]]
    if f.specialty and not doctor_filters and not f.city and connection.vendor == "postgresql":
        rows = queries.entries(specialty=f.specialty, resolution=resolution, cells=list(cells))
    else:
        if f.specialty:  # the entries say whether the doctor is listed: no join for that
            source: QuerySet[Any] = DirectoryEntry.objects.filter(
                doctor_filters, listed=True, specialty__code=f.specialty
            )
            if f.city:
                source = source.filter(_city_q(f.city, "clinic__"))
        else:
            source = Clinic.objects.filter(_doctor_q(f, "doctor__", city=False))
            if f.city:
                source = source.filter(_city_q(f.city))
        rows = source.filter(**{f"{geo.column_for(resolution)}__in": cells}).values_list(
            "doctor_id", "latitude", "longitude"
        )
    nearest: dict[str, float] = {}
    # In nearest_first's order: distance, then id (a UUID orders as its text does).
    for doctor_id, distance in geo.nearest_first((f.latitude, f.longitude), rows, f.radius_km):
        nearest.setdefault(str(doctor_id), distance)
    return list(nearest.items())


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
# A card's own columns, in the order of doctors.queries' card statement.
_CARD_COLUMNS = (
    "id",
    "user__first_name",
    "user__last_name",
    "designation",
    "bio_en",
    "bio_ar",
    "languages",
    "fee_minor",
    "currency",
    "offers_in_person",
    "offers_video",
    "offers_chat",
    "years_experience",
    "rating_sum",
    "rating_count",
)


@dataclass(slots=True)
class Card:
    """What a doctor's public card shows, from plain rows (the API turns it into DoctorOut)."""

    id: str
    name: str
    designation: str
    bio_en: str
    bio_ar: str
    languages: list[str]
    fee_minor: int
    currency: str
    modes: list[str]
    years_experience: int
    rating: float | None
    rating_count: int
    specialties: list[Sequence[str]]  # (code, name_en, name_ar), by code
    clinics: list[dict[str, Any]]  # CARD_CLINIC_FIELDS, by name then id
    distance_km: float | None = None
    next_available: datetime | None = None


def cards(ids: Iterable[Any], *, listed_only: bool = False) -> list[Card]:
    """The cards of these doctors, in this order (ids of no doctor left out), whatever their
    listing unless ``listed_only`` (public answers: the listing rule is checked again here,
    so that a stale index row never shows an unlisted doctor): one statement on PostgreSQL
    (:mod:`doctors.queries`), three elsewhere."""
    wanted = [str(i) for i in ids]
    if not wanted:
        return []
    if connection.vendor == "postgresql":
        rows = queries.card_rows(wanted, listed_only=listed_only)
    else:
        rows = _card_rows(wanted, listed_only=listed_only)
    by_id = {row[0]: _card(*row) for row in rows}
    return [by_id[i] for i in wanted if i in by_id]


def _card_rows(ids: list[Any], *, listed_only: bool = False) -> list[tuple[Any, ...]]:
    """:func:`doctors.queries.card_rows` through the ORM, for the other databases."""
    profiles = DoctorProfile.objects.filter(id__in=ids)
    if listed_only:
        profiles = profiles.filter(listing_q())
    rows: dict[str, list[Any]] = {
        str(row[0]): [str(row[0]), *row[1:], [], []] for row in profiles.values_list(*_CARD_COLUMNS)
    }
    ids = list(rows)
    through = DoctorProfile.specialties.through
    for doctor_id, *specialty in (
        through.objects.filter(doctorprofile_id__in=ids)
        .order_by("specialty__code")
        .values_list(
            "doctorprofile_id", "specialty__code", "specialty__name_en", "specialty__name_ar"
        )
    ):
        rows[str(doctor_id)][-2].append(specialty)
    for doctor_id, clinic_id, *clinic in (
        Clinic.objects.filter(doctor_id__in=ids)
        .order_by("name", "id")
        .values_list("doctor_id", *CARD_CLINIC_FIELDS)
    ):
        rows[str(doctor_id)][-1].append([str(clinic_id), *clinic])
    return [tuple(row) for row in rows.values()]


def _card(
    id: str,  # noqa: A002 - the column's name
    first_name: str,
    last_name: str,
    designation: str,
    bio_en: str,
    bio_ar: str,
    languages: str,
    fee_minor: int,
    currency: str,
    in_person: bool,
    video: bool,
    chat: bool,
    years_experience: int,
    rating_sum: int,
    rating_count: int,
    specialties: list[Sequence[str]],
    clinics: list[Sequence[Any]],
) -> Card:
    return Card(
        id=id,
        name=full_name(first_name, last_name),
        designation=designation,
        bio_en=bio_en,
        bio_ar=bio_ar,
        languages=language_codes(languages),
        fee_minor=fee_minor,
        currency=currency,
        modes=offered_modes(in_person, video, chat),
        years_experience=years_experience,
        rating=average_rating(rating_sum, rating_count),
        rating_count=rating_count,
        specialties=specialties,
        clinics=[dict(zip(CARD_CLINIC_FIELDS, clinic, strict=True)) for clinic in clinics],
    )


def doctor_public(*, doctor_id: Any) -> Card:
    found = cards([doctor_id], listed_only=True)
    if not found:
        raise DoctorNotFound()
    return found[0]


def doctor_own(*, user: User) -> DoctorProfile:
    """The calling doctor's own profile, whatever its verification status."""
    profile = DoctorProfile.objects.filter(user=user).select_related("user").first()
    if profile is None:
        raise DoctorNotFound()
    return profile


def verification_queue(
    *, viewer: User, status: str = Verification.PENDING
) -> QuerySet[DoctorProfile]:
    """Profiles by verification status; not those of erased accounts (nothing is left to
    decide about them: :func:`doctors.services.doctor_verify` refuses them)."""
    require_permission(viewer, "doctors.change_doctorprofile")
    return DoctorProfile.objects.filter(
        verification=status, user__deleted_at__isnull=True
    ).select_related("user")


def specialties() -> QuerySet[Specialty]:
    return Specialty.objects.all()


def _by_availability(
    f: SearchFilters, position: tuple[int, Any], limit: int, located: bool
) -> tuple[list[Card], str | None]:
    """Searches that need free slots: candidates in the order asked for (distance, rating,
    fee or name; by default distance with a location, else rating), a batch at a time until
    the page is full, kept if they have a free slot on the date; ordered by their next free
    slot if asked (among the first ``AVAILABILITY_SCANNED`` candidates, the sort key then
    being ``[first free start, id]``)."""
    if AVAILABILITY is None:
        raise RuntimeError("doctors.selectors.AVAILABILITY is wired in telemed/apps.py")
    offset, after = position[0], _keyset(position)
    by_time = f.sort == "next_available"
    rank_after = None if by_time else after
    if located:
        ranked = _ranked_nearby(f, rank_after)[: AVAILABILITY_SCANNED + 1]
    else:
        ranked = _ranked(f, rank_after, 0, AVAILABILITY_SCANNED + 1)
    more = len(ranked) > AVAILABILITY_SCANNED  # candidates beyond this request's budget
    ranked = ranked[:AVAILABILITY_SCANNED]
    start = offset if after is None else 0
    free: dict[str, datetime] = {}
    kept: list[Ranked] = []
    now = timezone.now()
    for at in range(0, len(ranked), AVAILABILITY_CANDIDATES):
        batch = ranked[at : at + AVAILABILITY_CANDIDATES]
        slots = AVAILABILITY([row.id for row in batch], f.available_on, now, f.mode)
        free.update((str(doctor_id), first) for doctor_id, first in slots.items())
        kept += [row for row in batch if row.id in free]
        if not by_time and len(kept) > start + limit:
            break  # the page and one more: the rest can wait for the next page
    if by_time:
        kept = sorted(
            (Ranked(row.id, row.distance, [free[row.id].isoformat(), row.id]) for row in kept),
            key=lambda row: (free[row.id], row.id),
        )
        if after is not None:
            last = _time_key(after)
            kept = [row for row in kept if (free[row.id], row.id) > last]
    page = kept[start : start + limit + 1]
    found = _public_cards(page[:limit])
    for card in found:
        card.next_available = free[card.id]
    if more and not by_time and len(page) <= limit:
        # The budget ran out before the page (and one more) filled: the next page goes on
        # after the last candidate looked at, so none beyond the budget is out of reach.
        return found, encode_cursor([offset + limit, ranked[-1].key], scope="doctors.search")
    return found, _next_cursor(offset + limit, page, limit)


def _time_key(after: list[Any]) -> tuple[datetime, str]:
    """A ``next_available`` cursor's key: the first free start and the doctor's id."""
    try:
        first = datetime.fromisoformat(after[0]) if len(after) == 2 else None
    except (TypeError, ValueError) as exc:
        raise InvalidCursor() from exc
    if first is None or first.tzinfo is None or not isinstance(after[1], str):
        raise InvalidCursor()
    return first, after[1]
