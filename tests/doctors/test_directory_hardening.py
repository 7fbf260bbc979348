"""The directory's edges: the availability scan budget, locks while geocoding, long and
unusual names, exact ratings, cards that vanish or go stale, and folded Arabic names."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import date, datetime, time, timedelta
from time import sleep
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.db.utils import ConnectionHandler
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Role, User
from bookings import selectors as bookings_selectors
from bookings import services as bookings_services
from bookings.models import AvailabilityRule, BookingPolicy, ExtraHours, TimeOff
from doctors import selectors, services
from doctors.geocoding import names_key
from doctors.models import Clinic, DirectoryEntry, DoctorProfile
from tests.accounts.stubs import Recorded, Reply, StubServer
from tests.doctors.factories import doctor, specialty
from tests.doctors.test_geocoding import FAKE_KEY, FakeGoogle
from tests.factories import bearer, login, make_user, post

pytestmark = pytest.mark.django_db
CAIRO = (30.0444, 31.2357)


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content[:300]
    return [item["id"] for item in response.json()["items"]]


def headers_of(api: Any, user: User) -> dict[str, str]:
    return bearer(login(api, user.email)["access"])


@pytest.fixture(autouse=True)
def _offline(settings: Any) -> None:
    settings.GOOGLE_MAPS_API_KEY = ""
    settings.GOOGLE_MAPS_BASE_URL = ""


# --- 1. available_on reaches the doctors beyond the scan budget -----------------------------


def open_on(profile: DoctorProfile, day: date) -> None:
    """Open all day on ``day``'s weekday (30-minute slots at the doctor's clinic), no notice."""
    AvailabilityRule.objects.create(
        doctor=profile,
        clinic=profile.clinics.get(),
        mode="in_person",
        weekday=day.weekday(),
        start=time(0),
        end=time(23, 30),
        slot_minutes=30,
    )
    BookingPolicy.objects.create(doctor=profile, min_notice_minutes=0)


@pytest.mark.parametrize(
    "query", ["", "&sort=name", f"&lat={CAIRO[0]}&lng={CAIRO[1]}&radius_km=50"]
)
def test_available_on_walks_past_the_scan_budget(api, monkeypatch, query):
    """With the budget smaller than the gaps between free doctors, pages come back short (or
    empty) with a cursor, and the walk still meets every free doctor exactly once."""
    monkeypatch.setattr(selectors, "AVAILABILITY_SCANNED", 3)
    monkeypatch.setattr(selectors, "AVAILABILITY_CANDIDATES", 2)
    day = timezone.localdate() + timedelta(days=3)
    made = [
        doctor(
            lat=CAIRO[0] + 0.001 * i,
            lng=CAIRO[1],
            last_name=f"Name{i:02d}",
            rating_sum=50 - i,
            rating_count=10,
        )
        for i in range(11)
    ]
    free = [made[i] for i in (0, 5, 6, 10)]  # the first budget holds one: the rest lie beyond
    for profile in free:
        open_on(profile, day)
    seen: list[str] = []
    url: str | None = f"/api/v1/doctors?limit=2&available_on={day}{query}"
    pages = 0
    while url:
        r = api.get(url)
        seen += ids(r)
        cursor = r.json()["next"]
        url = (
            f"/api/v1/doctors?limit=2&available_on={day}{query}&cursor={cursor}" if cursor else None
        )
        pages += 1
        assert pages < 20
    assert seen == [str(d.id) for d in free]


# --- 2. a clinic's geocoding locks nothing the doctor's bookings need --------------------------


@pytest.mark.django_db(transaction=True)
def test_a_slow_geocode_leaves_the_doctors_profile_free(settings):
    """While Google answers slowly, a booking's ``FOR SHARE`` of the doctor's profile does not
    wait (the clinic is geocoded before it is locked, and only the clinic is locked)."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks of PostgreSQL")
    profile = doctor()
    clinic = Clinic.objects.get(doctor=profile)
    google = FakeGoogle()
    asked = threading.Event()

    def slow(request: Recorded) -> Reply:
        asked.set()
        sleep(1.5)
        return google.respond(request)

    errors: list[BaseException] = []

    def edit() -> None:
        try:
            services.clinic_update(
                user=profile.user, clinic_id=clinic.id, changes={"address": "15 Tahrir Square"}
            )
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    with StubServer(slow) as server:
        settings.GOOGLE_MAPS_API_KEY = FAKE_KEY
        settings.GOOGLE_MAPS_BASE_URL = server.base_url
        editing = threading.Thread(target=edit)
        editing.start()
        try:
            assert asked.wait(10)
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '300ms'")
                cursor.execute(
                    "SELECT id FROM doctors_doctorprofile WHERE id = %s FOR SHARE", [profile.id]
                )
                assert cursor.fetchone() is not None
            assert editing.is_alive()  # the geocode was still running
        finally:
            editing.join(20)
    assert errors == []
    clinic.refresh_from_db()
    assert clinic.address == "15 Tahrir Square"
    assert (clinic.latitude, clinic.longitude) == google.location


def test_a_clinic_edited_meanwhile_is_geocoded_in_its_new_city(monkeypatch):
    """The geocode runs unlocked: if the clinic's city changed meanwhile, the answer (worked
    out in the old city) is not applied over it; the address is geocoded again."""
    from doctors import geocoding

    profile = doctor()
    clinic = Clinic.objects.get(doctor=profile)
    real = geocoding.geocode
    queries: list[str] = []

    def geocode_while_the_city_changes(query: str, *, language: str = "en", **kw: Any) -> Any:
        if not queries:  # another request moves the clinic to Alexandria meanwhile
            Clinic.objects.filter(pk=clinic.pk).update(city="Alexandria")
        queries.append(query)
        return real(query, language=language, **kw)

    monkeypatch.setattr(geocoding, "geocode", geocode_while_the_city_changes)
    services.clinic_update(user=profile.user, clinic_id=clinic.id, changes={"address": "2 Main St"})
    assert queries == ["2 Main St, Cairo", "2 Main St, Alexandria"]
    clinic.refresh_from_db()
    assert clinic.city == "Alexandria"
    assert clinic.latitude == pytest.approx(31.2, abs=0.1)


# --- 3. a city that normalising lengthens ------------------------------------------------------


def test_a_city_whose_normal_form_outgrows_the_column_is_saved_and_found(api):
    city = "\ufdfa" * 30  # NFKD spells each out in 18 letters: 540 in all
    profile = doctor(lat=None, lng=None)
    headers = headers_of(api, profile.user)
    r = post(
        api,
        "/api/v1/doctor/clinics",
        {"name": "A", "address": "1 Main St", "city": city, "latitude": 30.0, "longitude": 31.0},
        **headers,
    )
    assert r.status_code == 201, r.content
    clinic_id = r.json()["id"]
    r = api.patch(
        f"/api/v1/doctor/clinics/{clinic_id}",
        {"city": city + "x", "latitude": 30.0, "longitude": 31.0},
        content_type="application/json",
        headers=headers,
    )
    assert r.status_code == 200, r.content
    assert ids(api.get("/api/v1/doctors", {"city": city + "x"})) == [str(profile.id)]
    assert len(names_key([city * 4, "ﷻ" * 120, "ﷰ" * 120])) <= 400


# --- 4. min_rating is exact ------------------------------------------------------------------


def test_min_rating_keeps_a_doctor_rated_exactly_the_threshold(api):
    assert 4.4 * 25 > 110  # the float product that dropped a 4.4 doctor from "4.4 and up"
    exact = doctor(rating_sum=110, rating_count=25)  # 4.40
    doctor(rating_sum=109, rating_count=25)  # 4.36
    doctor(rating_sum=0, rating_count=0)
    assert ids(api.get("/api/v1/doctors?min_rating=4.4")) == [str(exact.id)]


def test_min_rating_is_exact_on_sqlite_too():
    """The same filter, compiled for SQLite (floats: where the product lost the doctor) and
    run on an in-memory database holding the columns it reads."""
    sqlite = ConnectionHandler(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
    )["default"]
    where = selectors._doctor_q(selectors.SearchFilters(min_rating=4.4), listing=False)
    query = DoctorProfile.objects.filter(where).values_list("rating_sum").query
    sql, params = query.get_compiler(connection=sqlite).as_sql()
    try:
        with sqlite.cursor() as cursor:
            cursor.execute("CREATE TABLE doctors_doctorprofile (rating_sum int, rating_count int)")
            cursor.execute("INSERT INTO doctors_doctorprofile VALUES (110, 25), (109, 25), (0, 0)")
            cursor.execute(sql, params)
            assert cursor.fetchall() == [(110,)]
    finally:
        sqlite.close()


# --- 5. the address's limit is the geocoder's ------------------------------------------------


def test_an_address_longer_than_geocoding_takes_is_refused_by_name(api):
    profile = doctor(lat=None, lng=None)
    headers = headers_of(api, profile.user)
    r = post(api, "/api/v1/doctor/clinics", {"name": "A", "address": "x" * 201}, **headers)
    assert r.status_code == 422
    assert "address" in r.json()["error"]["fields"]
    r = post(api, "/api/v1/doctor/clinics", {"name": "A", "address": "1 Main\x01 St"}, **headers)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "directory.invalid_place"
    assert list(r.json()["error"]["fields"]) == ["address"]


def test_an_address_that_leaves_no_room_for_the_city_is_geocoded_alone(api):
    profile = doctor(lat=None, lng=None)
    headers = headers_of(api, profile.user)
    address = ("12 Nile Corniche Street, " * 8)[:190] + ", Cairo"
    assert len(address) <= 200 < len(f"{address}, Alexandria")
    r = post(
        api,
        "/api/v1/doctor/clinics",
        {"name": "A", "address": address, "city": "Alexandria"},
        **headers,
    )
    assert r.status_code == 201, r.content
    assert r.json()["city"] == "Alexandria"  # the doctor's own city is kept
    assert r.json()["latitude"] == pytest.approx(30.06, abs=0.05)  # the address's Cairo


# --- 6. cards are paired with their own rows ---------------------------------------------------


@pytest.fixture
def vanishing(monkeypatch) -> Iterator[list[Any]]:
    """Doctors put in the list are deleted just before the cards are read (as by a request
    that commits in between)."""
    doomed: list[Any] = []
    real = selectors.cards

    def cards_after_a_deletion(wanted: Any, **kwargs: Any) -> Any:
        DoctorProfile.objects.filter(id__in=doomed).delete()
        return real(wanted, **kwargs)

    monkeypatch.setattr(selectors, "cards", cards_after_a_deletion)
    yield doomed


def test_distance_stays_with_its_own_doctor_when_one_vanishes(api, vanishing):
    gone = doctor(lat=CAIRO[0], lng=CAIRO[1])
    stays = doctor(lat=CAIRO[0] + 0.01, lng=CAIRO[1])
    vanishing.append(gone.id)
    items = api.get(f"/api/v1/doctors?lat={CAIRO[0]}&lng={CAIRO[1]}").json()["items"]
    assert [i["id"] for i in items] == [str(stays.id)]
    assert items[0]["distance_km"] == pytest.approx(1.112, abs=0.01)


def test_the_verification_queue_survives_a_profile_deleted_mid_request(api, vanishing):
    gone, stays = doctor(verified=False), doctor(verified=False)
    vanishing.append(gone.id)
    admin = make_user(role=Role.ADMIN)
    r = api.get("/api/v1/admin/verifications", headers=headers_of(api, admin))
    assert ids(r) == [str(stays.id)]


# --- 7. a stale index row never shows an unlisted doctor ---------------------------------------


DAY = timezone.localdate() + timedelta(days=3)


@pytest.mark.parametrize("extra", ["", "&language=ar", f"&available_on={DAY}"])
def test_a_stale_listed_entry_shows_no_deactivated_doctor(api, extra):
    cardio = specialty()
    shown = doctor(specialties=(cardio,), languages=",ar,")
    hidden = doctor(specialties=(cardio,), languages=",ar,")
    for profile in (shown, hidden):
        open_on(profile, DAY)
    # As a relist racing a verification would leave it: the account is closed, the index
    # still says listed.
    User.objects.filter(pk=hidden.user_id).update(is_active=False)
    assert DirectoryEntry.objects.filter(doctor=hidden, listed=True).exists()
    search = f"/api/v1/doctors?specialty=cardiology&lat={CAIRO[0]}&lng={CAIRO[1]}{extra}"
    assert ids(api.get(search)) == [str(shown.id)]
    assert api.get(f"/api/v1/doctors/{hidden.id}").status_code == 404


def test_public_cards_hold_both_paths_to_the_listing_rule():
    listed, pending = doctor(), doctor(verified=False)
    closed = doctor()
    User.objects.filter(pk=closed.user_id).update(is_active=False)
    everyone = [str(d.id) for d in (listed, pending, closed)]
    assert [c.id for c in selectors.cards(everyone, listed_only=True)] == [str(listed.id)]
    assert [row[0] for row in selectors._card_rows(everyone, listed_only=True)] == [str(listed.id)]
    assert [c.id for c in selectors.cards(everyone)] == everyone


# --- 8. names are folded as city names are ---------------------------------------------------


def test_arabic_names_are_found_whatever_the_alef(api):
    ahmad = doctor(first_name="أحمد", last_name="الشريف")
    plain = doctor(first_name="احمد", last_name="Zoë")
    both = {str(ahmad.id), str(plain.id)}
    assert set(ids(api.get("/api/v1/doctors", {"name": "احمد"}))) == both
    assert set(ids(api.get("/api/v1/doctors", {"name": "أحمد"}))) == both
    assert ids(api.get("/api/v1/doctors", {"name": "إحمد شريف"})) == [str(ahmad.id)]
    assert ids(api.get("/api/v1/doctors", {"name": "ZOE"})) == [str(plain.id)]
    # As the name is typed: with its article, before and after the stored form drops it.
    for typed in ("الش", "الشر", "الشريف"):
        assert ids(api.get("/api/v1/doctors", {"name": typed})) == [str(ahmad.id)], typed


def test_a_renamed_doctor_is_found_by_the_new_name_only(api):
    profile = doctor(first_name="Salma", last_name="Nour")
    user = profile.user
    user.first_name = "منى"
    user.save()
    assert ids(api.get("/api/v1/doctors?name=Salma")) == []
    assert ids(api.get("/api/v1/doctors", {"name": "مني"})) == [str(profile.id)]  # ى is ي


# --- 9. the directory's availability reads a batch at once -----------------------------------


def varied_doctors(count: int, day: date) -> list[DoctorProfile]:
    """Doctors with weekly and one-off hours, buffers, time off, bookings and notice."""
    made = []
    for i in range(count):
        profile = doctor(offers_video=True)
        clinic = profile.clinics.get()
        AvailabilityRule.objects.create(
            doctor=profile, clinic=clinic, mode="in_person", weekday=day.weekday(),
            start=time(9 + i % 3), end=time(12), slot_minutes=30, buffer_minutes=(i % 2) * 15,
        )  # fmt: skip
        if i % 3 == 1:
            ExtraHours.objects.create(
                doctor=profile, mode="video", date=day, start=time(7), end=time(8)
            )
        if i % 4 == 2:
            start = timezone.make_aware(datetime.combine(day, time(9)), clinic_zone(clinic))
            TimeOff.objects.create(doctor=profile, start=start, end=start + timedelta(hours=2))
        BookingPolicy.objects.create(doctor=profile, min_notice_minutes=0, window_days=30 - i)
        if i % 2 == 0:
            first = bookings_selectors.doctor_slots(
                doctor=profile, start=day_start(day, clinic), end=day_start(day, clinic) + DAY1
            )
            if first:
                bookings_services.appointment_book(
                    patient=make_user(), doctor_id=profile.id, start=first[0].start,
                    mode=first[0].mode,
                )  # fmt: skip
        made.append(profile)
    return made


DAY1 = timedelta(days=1)


def clinic_zone(clinic: Clinic) -> ZoneInfo:
    return ZoneInfo(clinic.time_zone)


def day_start(day: date, clinic: Clinic) -> datetime:
    return datetime.combine(day, time(0), tzinfo=clinic_zone(clinic))


@pytest.mark.parametrize("on_date", [True, False])
def test_first_free_slots_reads_a_batch_in_a_fixed_number_of_queries(on_date):
    day = timezone.localdate() + timedelta(days=2)
    made = varied_doctors(8, day)
    now = timezone.now()
    on = day if on_date else None
    expected = {}
    for profile in made:
        clinic = profile.clinics.get()
        start, end = (
            (day_start(day, clinic), day_start(day, clinic) + DAY1)
            if on
            else (now, now + 14 * DAY1)
        )
        slots = bookings_selectors.doctor_slots(doctor=profile, start=start, end=end, now=now)
        if slots:
            expected[profile.id] = slots[0].start
    assert len(expected) >= 6
    counts = []
    for batch in (made[:2], made):
        for _ in range(2):  # the schedules cold, then from the cache
            delete_schedules(batch)
            with CaptureQueriesContext(connection) as queries:
                found = bookings_selectors.first_free_slots([d.id for d in batch], on, now)
            counts.append(len(queries))
            assert found == {d.id: expected[d.id] for d in batch if d.id in expected}
            with CaptureQueriesContext(connection) as queries:
                assert bookings_selectors.first_free_slots([d.id for d in batch], on, now) == found
            counts.append(len(queries))
    assert counts[:4] == counts[4:]  # 2 doctors or 8: the same
    assert max(counts) <= 7
    assert counts[1] < counts[0], counts  # the cached schedules need no read


def delete_schedules(doctors: list[DoctorProfile]) -> None:
    cache.delete_many([bookings_selectors.schedule_key(d.pk) for d in doctors])


def test_the_backfill_folds_every_stored_name_in_batches(monkeypatch):
    import importlib

    from django.apps import apps

    fill = importlib.import_module("doctors.migrations.0007_doctorprofile_search_name_fill")
    monkeypatch.setattr(fill, "BATCH", 2)  # several batches, each its own transaction
    profiles = [
        doctor(first_name="أحمد", last_name=f"Ÿusuf{n}", lat=None, lng=None) for n in range(5)
    ]
    DoctorProfile.objects.update(search_name="")
    fill.fill(apps, None)
    assert {
        p.search_name for p in DoctorProfile.objects.filter(pk__in=[p.pk for p in profiles])
    } == {f"احمد yusuf{n} احمدyusuf{n}" for n in range(5)}  # the words, then run together
