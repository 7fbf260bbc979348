"""Geocoding for the directory: the offline gazetteer, and Google's Geocoding API through the
real ``googlemaps`` SDK against a local stub of its HTTP API (the SDK's ``base_url``)."""

from __future__ import annotations

import logging
import socket
import time
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from doctors import geocoding
from doctors.errors import InvalidPlace, PlaceNotFound
from doctors.geocoding import Place, geocode, nearest_place
from tests.accounts.stubs import Recorded, Reply, StubServer

CAIRO = (30.06263, 31.24967)  # the gazetteer's Cairo
GOOGLE_CAIRO = (30.0444196, 31.2357116)  # Google's, so that a test can tell the sources apart
FAKE_KEY = "AIzaSyA-fake-key-for-tests-0123456789ab"  # the SDK insists on the "AIza" prefix
GEOCODE_PATH = "/maps/api/geocode/json"


@pytest.fixture(autouse=True)
def _offline(settings: Any) -> None:
    """The gazetteer, whatever the developer's environment says (the Google tests opt in)."""
    settings.GOOGLE_MAPS_API_KEY = ""
    settings.GOOGLE_MAPS_BASE_URL = ""


def near(place: Place, latitude: float, longitude: float) -> bool:
    return abs(place.latitude - latitude) < 0.01 and abs(place.longitude - longitude) < 0.01


# --- The gazetteer ---------------------------------------------------------------------------


@pytest.mark.parametrize("query", ["Cairo", "القاهرة", "cairo", "  CAIRO ", "القاهره", "Le Caire"])
def test_spellings_of_cairo_resolve_to_cairo(query: str) -> None:
    place = geocode(query)
    assert near(place, *CAIRO)
    assert place.time_zone == "Africa/Cairo"
    assert place.country == "EG"
    assert place.source == "gazetteer"


@pytest.mark.parametrize(
    "query",
    [
        "القَاهِرَة",  # harakat
        "القاهـــرة",  # tatweel
        "\u200fالقاهرة\u200e",  # right-to-left and left-to-right marks around it
        "قاهرة",  # without the article
    ],
)
def test_arabic_variants_are_normalised(query: str) -> None:
    assert near(geocode(query), *CAIRO)


def test_alexandria_in_arabic_is_the_egyptian_one() -> None:
    place = geocode("الإسكندرية")
    assert place.country == "EG"
    assert place.time_zone == "Africa/Cairo"
    assert near(place, 31.20176, 29.91582)


@pytest.mark.parametrize("query", ["Riyadh", "الرياض"])
def test_riyadh(query: str) -> None:
    place = geocode(query)
    assert place.country == "SA"
    assert place.time_zone == "Asia/Riyadh"
    assert near(place, 24.68773, 46.72185)


def test_paris_is_the_most_populous_paris() -> None:
    place = geocode("Paris")
    assert place.country == "FR"
    assert place.time_zone == "Europe/Paris"
    assert near(place, 48.85341, 2.3488)


@pytest.mark.parametrize("query", ["Paris, US", "Paris, USA", "Paris, Texas", "Paris, TX"])
def test_a_country_or_state_picks_another_paris(query: str) -> None:
    place = geocode(query)
    assert place.country == "US"
    assert place.time_zone == "America/Chicago"
    assert near(place, 33.66094, -95.55551)


@pytest.mark.parametrize(
    ("query", "country", "latitude"),
    [
        ("Alexandria, Egypt", "EG", 31.20176),
        ("Alexandria, EG", "EG", 31.20176),
        ("الإسكندرية، مصر", "EG", 31.20176),
        ("Alexandria, US", "US", 38.80484),  # the most populous one in the US: Virginia
        ("Alexandria, VA", "US", 38.80484),  # VA is also the Vatican: the state fits, it does not
        ("Alexandria, LA", "US", 31.31129),  # Louisiana, not Laos
    ],
)
def test_qualifiers_disambiguate(query: str, country: str, latitude: float) -> None:
    place = geocode(query)
    assert place.country == country
    assert place.latitude == pytest.approx(latitude, abs=0.01)


@pytest.mark.parametrize(
    "query",
    [
        "15 Tahrir Square, Cairo, Egypt",
        "15 Tahrir Square, Cairo 11511, Egypt",
        "١٥ ميدان التحرير، القاهرة، مصر",
        "Tahrir Square Cairo",  # no commas: the trailing words name the city
        "Apartment 4, 15 Tahrir Square, Downtown, Cairo",
    ],
)
def test_a_street_address_resolves_to_the_city_it_names(query: str) -> None:
    place = geocode(query)
    assert near(place, *CAIRO)
    assert place.time_zone == "Africa/Cairo"


def test_a_qualifier_that_contradicts_every_candidate_is_not_found() -> None:
    with pytest.raises(PlaceNotFound):
        geocode("Cairo, France")


def test_a_country_name_alone_is_no_town_elsewhere() -> None:
    # geonames lists "Egypt" as an alternate name of Goodyear, Arizona
    with pytest.raises(PlaceNotFound):
        geocode("Egypt")
    assert geocode("Kuwait").country == "KW"  # a city of that country may carry its name


def test_names_are_in_the_requested_language() -> None:
    english = geocode("القاهرة", language="en")
    assert (english.city, english.formatted) == ("Cairo", "Cairo, Egypt")
    arabic = geocode("Cairo", language="ar")
    assert (arabic.city, arabic.formatted) == ("القاهرة", "القاهرة، مصر")
    assert geocode("Cairo", language="ar-EG").city == "القاهرة"
    assert geocode("Cairo", language="fr").city == "Cairo"  # unsupported: the default language


def test_nearest_place_is_the_nearest_city() -> None:
    place = nearest_place(30.07, 31.26)
    assert (place.city, place.country, place.time_zone) == ("Cairo", "EG", "Africa/Cairo")
    assert nearest_place(21.5, 39.2).time_zone == "Asia/Riyadh"  # Jeddah
    with pytest.raises(ValueError):
        nearest_place(91.0, 0.0)


def test_every_gazetteer_time_zone_is_known_to_zoneinfo() -> None:
    """Time zones feed slot computation: a machine with old tz data would break bookings."""
    zones = {city.time_zone for city in geocoding._gazetteer().cities}
    assert zones - zoneinfo.available_timezones() == set()


def test_a_lookup_takes_microseconds_once_the_index_is_built() -> None:
    geocoding.warm_up()
    runs = 1000
    start = time.perf_counter()
    for _ in range(runs):
        geocode("15 Tahrir Square, Cairo, Egypt")
    per_lookup = (time.perf_counter() - start) / runs
    assert per_lookup < 0.0005, f"{per_lookup * 1e6:.0f} µs per lookup"


# --- Refused queries -------------------------------------------------------------------------


def test_an_unknown_place_is_not_found() -> None:
    with pytest.raises(PlaceNotFound) as caught:
        geocode("Qwxzyville")
    assert caught.value.code == "directory.place_not_found"
    assert caught.value.status == 422
    assert caught.value.envelope()["error"]["message"] == (
        "We could not find this place. Check the spelling or try a nearby city."
    )


@pytest.mark.parametrize(
    "query",
    [
        "",
        "   ",
        "\u3000 ",  # ideographic space
        "x" * 500,
        "a" * 201,
        "Cairo\x00",
        "Cai\nro",
        "\tCairo",
        "\x1b[31mCairo",
        "Cairo\x85",  # a C1 control
        "Cairo\ud800",  # a lone surrogate: cannot even be encoded to UTF-8
    ],
)
def test_invalid_queries_are_refused(query: str) -> None:
    with pytest.raises(InvalidPlace) as caught:
        geocode(query)
    assert caught.value.code == "directory.invalid_place"
    assert caught.value.status == 422


def test_two_hundred_characters_is_still_a_query() -> None:
    with pytest.raises(PlaceNotFound):
        geocode("a" * 200)


# --- Google, through the SDK, against a local stub -------------------------------------------


def google_result(latitude: float, longitude: float, country: str, language: str) -> dict[str, Any]:
    """A geocoding result in Google's documented JSON format."""
    arabic = language == "ar"
    components = [
        ("القاهرة" if arabic else "Cairo", "القاهرة" if arabic else "Cairo", ["locality", "political"]),
        ("محافظة القاهرة" if arabic else "Cairo Governorate", "محافظة القاهرة" if arabic else "Cairo Governorate",
         ["administrative_area_level_1", "political"]),
        ("مصر" if arabic else "Egypt", country, ["country", "political"]),
    ]  # fmt: skip
    return {
        "address_components": [
            {"long_name": long, "short_name": short, "types": types}
            for long, short, types in components
        ],
        "formatted_address": "القاهرة، مصر" if arabic else "Cairo, Cairo Governorate, Egypt",
        "geometry": {
            "location": {"lat": latitude, "lng": longitude},
            "location_type": "APPROXIMATE",
            "viewport": {
                "northeast": {"lat": latitude + 0.2, "lng": longitude + 0.2},
                "southwest": {"lat": latitude - 0.2, "lng": longitude - 0.2},
            },
        },
        "place_id": "ChIJ674hC6Y_WBQRujtC6Jay33k",
        "types": ["locality", "political"],
    }


@dataclass
class FakeGoogle:
    """Answers like the Geocoding API; ``mode`` chooses the answer."""

    mode: str = "ok"  # ok | zero | over_limit | denied | http_500 | not_json
    location: tuple[float, float] = GOOGLE_CAIRO
    country: str = "EG"
    server: StubServer | None = None
    seen: list[Recorded] = field(default_factory=list)

    def respond(self, request: Recorded) -> Reply:
        if request.path != GEOCODE_PATH:
            return Reply.json(404, {"error": "not found"})
        self.seen.append(request)
        if request.query.get("key") != [FAKE_KEY]:
            return Reply.json(
                200,
                {"error_message": "The provided API key is invalid.", "results": [],
                 "status": "REQUEST_DENIED"},
            )  # fmt: skip
        if self.mode == "zero":
            return Reply.json(200, {"results": [], "status": "ZERO_RESULTS"})
        if self.mode == "over_limit":
            return Reply.json(
                200,
                {"error_message": "You have exceeded your rate-limit for this API.",
                 "results": [], "status": "OVER_QUERY_LIMIT"},
            )  # fmt: skip
        if self.mode == "denied":
            return Reply.json(
                200,
                {"error_message": "This API project is not authorized to use this API.",
                 "results": [], "status": "REQUEST_DENIED"},
            )  # fmt: skip
        if self.mode == "http_500":
            return Reply(500, b"Internal Server Error", {"Content-Type": "text/plain"})
        if self.mode == "not_json":
            return Reply(200, b"<html>captive portal</html>", {"Content-Type": "text/html"})
        language = request.query.get("language", ["en"])[0]
        result = google_result(*self.location, self.country, language)
        return Reply.json(200, {"results": [result], "status": "OK"})


@contextmanager
def google_serving(settings: Any) -> Iterator[FakeGoogle]:
    """A :class:`FakeGoogle` on a local stub server, the SDK's settings pointing at it."""
    fake = FakeGoogle()
    with StubServer(fake.respond) as server:
        fake.server = server
        settings.GOOGLE_MAPS_API_KEY = FAKE_KEY
        settings.GOOGLE_MAPS_BASE_URL = server.base_url
        yield fake


@pytest.fixture
def google(settings: Any) -> Iterator[FakeGoogle]:
    with google_serving(settings) as fake:
        yield fake


def test_google_answer_becomes_a_place(google: FakeGoogle) -> None:
    place = geocode("15 Tahrir Square, Cairo")
    assert place == Place(
        latitude=GOOGLE_CAIRO[0],
        longitude=GOOGLE_CAIRO[1],
        city="Cairo",
        country="EG",
        time_zone="Africa/Cairo",  # from the nearest gazetteer city in Egypt
        formatted="Cairo, Cairo Governorate, Egypt",
        source="google",
    )
    [request] = google.seen
    assert request.query["address"] == ["15 Tahrir Square, Cairo"]
    assert request.query["language"] == ["en"]
    assert request.query["key"] == [FAKE_KEY]


def test_google_is_asked_in_the_requested_language(google: FakeGoogle) -> None:
    place = geocode("القاهرة", language="ar")
    assert (place.city, place.formatted, place.source) == ("القاهرة", "القاهرة، مصر", "google")
    assert google.seen[0].query["language"] == ["ar"]
    assert google.seen[0].query["address"] == ["القاهرة"]


def test_the_second_identical_lookup_is_served_from_the_cache(google: FakeGoogle) -> None:
    first = geocode("Cairo")
    assert geocode("Cairo") == first
    assert geocode("  cairo ") == first  # the same query once case and spaces are folded
    assert len(google.seen) == 1
    geocode("Cairo", language="ar")  # another language is another answer
    assert len(google.seen) == 2


def test_zero_results_is_not_found_and_remembered(google: FakeGoogle) -> None:
    google.mode = "zero"
    for _ in range(2):
        with pytest.raises(PlaceNotFound):
            geocode("Qwxzyville")
    assert len(google.seen) == 1


@pytest.mark.parametrize(
    ("mode", "logged"),
    [
        ("over_limit", "status OVER_QUERY_LIMIT"),
        ("denied", "status REQUEST_DENIED"),
        ("http_500", "Timeout"),  # the SDK retries a 5xx until its retry budget is spent
        ("not_json", "JSONDecodeError"),
    ],
)
def test_google_failures_fall_back_to_the_gazetteer(
    google: FakeGoogle, caplog: pytest.LogCaptureFixture, mode: str, logged: str
) -> None:
    google.mode = mode
    with caplog.at_level(logging.WARNING, logger="doctors.geocoding"):
        place = geocode("Cairo")
    assert place.source == "gazetteer"
    assert near(place, *CAIRO)
    assert google.seen, "Google was not asked"
    [record] = [r for r in caplog.records if r.name == "doctors.geocoding"]
    assert logged in record.getMessage()
    assert "Cairo" not in record.getMessage()
    assert FAKE_KEY not in caplog.text


def test_over_query_limit_is_not_retried(google: FakeGoogle) -> None:
    google.mode = "over_limit"
    geocode("Cairo")
    assert len(google.seen) == 1


def test_a_fallback_answer_is_not_cached(google: FakeGoogle) -> None:
    google.mode = "over_limit"
    assert geocode("Cairo").source == "gazetteer"
    google.mode = "ok"
    assert geocode("Cairo").source == "google"


def test_unreachable_google_falls_back_without_logging_the_key(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.GOOGLE_MAPS_API_KEY = FAKE_KEY
    settings.GOOGLE_MAPS_BASE_URL = f"http://127.0.0.1:{port}"
    with caplog.at_level(logging.DEBUG):
        place = geocode("Cairo")
    assert place.source == "gazetteer"
    assert "TransportError" in caplog.text
    assert FAKE_KEY not in caplog.text


def test_a_google_place_takes_the_time_zone_of_its_own_country(google: FakeGoogle) -> None:
    # A point beside Ciudad Juárez: Google says the United States, so El Paso's zone.
    google.location = (31.72, -106.46)
    google.country = "US"
    place = geocode("Somewhere by the border")
    assert (place.country, place.time_zone) == ("US", "America/Denver")
    google.country = "MX"
    assert geocode("Somewhere else by the border").time_zone == "America/Ciudad_Juarez"
