"""Gaps an audit found in the directory's tests: the plan of the real nearby search, the
database path against brute force at the hard places, the rejection's audit and message,
and the error envelopes of a forged cursor and an unknown place."""

from __future__ import annotations

import random
import re
import uuid
from typing import Any

import pytest
from django.contrib.auth.hashers import make_password
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import translation
from django.utils.translation import gettext

from accounts.models import Role, User
from audit.models import AuditEvent
from core.pagination import InvalidCursor, encode_cursor
from doctors import geo, index
from doctors.errors import PlaceNotFound
from doctors.models import Clinic, DoctorProfile, Specialty, Verification
from realtime.models import Notification
from tests.doctors.factories import specialty
from tests.doctors.test_geo import destination, make_points, random_global
from tests.factories import bearer, login, make_user

pytestmark = pytest.mark.django_db
CAIRO = (30.0444, 31.2357)
# Tables a nearby search must never read whole.
BIG_TABLES = ("doctors_clinic", "doctors_doctorprofile", "accounts_user", "doctors_directoryentry")


def arabic(text: str) -> bool:
    return any("\u0600" <= ch <= "\u06ff" for ch in text)


def seed(
    places: list[list[tuple[float, float]]],
    *,
    rng: random.Random,
    with_specialty: Specialty | None = None,
    sure: int = 0,
) -> None:
    """One doctor per entry of ``places`` (a clinic at each of its points), in bulk: no
    signals, so the specialty index is rebuilt by hand. About 1 in 20 is pending, 1 in 50
    has an inactive account (never listed) and half have the specialty; except the first
    ``sure`` doctors, listed and with the specialty."""
    password = make_password(None)
    users, profiles, clinics, links = [], [], [], []
    through = DoctorProfile.specialties.through
    for i, points in enumerate(places):
        user = User(
            id=uuid.uuid4(),
            email=f"gap-{uuid.uuid4().hex}@example.com",
            role=Role.DOCTOR,
            first_name="Gap",
            last_name=f"Doctor{i}",
            password=password,
            is_active=i < sure or rng.random() > 0.02,
        )
        pending = i >= sure and rng.random() < 0.05
        profile = DoctorProfile(
            id=uuid.uuid4(),
            user=user,
            verification=Verification.PENDING if pending else Verification.VERIFIED,
        )
        users.append(user)
        profiles.append(profile)
        for lat, lng in points:
            clinic = Clinic(
                doctor=profile,
                name=f"Clinic {i}",
                address="1 Main St",
                city="Somewhere",
                country="EG",
                latitude=lat,
                longitude=lng,
                time_zone="UTC",
            )
            for resolution, cell in geo.cells_for(lat, lng).items():
                setattr(clinic, geo.column_for(resolution), cell)
            clinics.append(clinic)
        if with_specialty is not None and (i < sure or rng.random() < 0.5):
            links.append(through(doctorprofile_id=profile.id, specialty_id=with_specialty.id))
    User.objects.bulk_create(users, batch_size=2000)
    DoctorProfile.objects.bulk_create(profiles, batch_size=2000)
    Clinic.objects.bulk_create(clinics, batch_size=2000)
    through.objects.bulk_create(links, batch_size=2000)
    if with_specialty is not None:
        index.rebuild()


def point_near(rng: random.Random, center: tuple[float, float], km: float) -> tuple[float, float]:
    return destination(*center, km * rng.random() ** 0.5, rng.uniform(0.0, 360.0))


def analyze() -> None:
    with connection.cursor() as cursor:
        for table in (*BIG_TABLES, "doctors_doctorprofile_specialties", "doctors_specialty"):
            cursor.execute(f'ANALYZE "{table}"')


# --- 1. the plan of the real nearby search without a specialty -----------------------------


@pytest.mark.skipif(connection.vendor != "postgresql", reason="EXPLAIN of PostgreSQL")
def test_the_real_nearby_search_without_specialty_scans_no_big_table(api: Client) -> None:
    """Every statement GET /doctors?lat&lng&radius_km=10 runs, EXPLAINed with real statistics
    (ANALYZE; the planner free to choose): no table of the directory is read whole, and the
    clinics are found through their H3 cell index.

    30,000 doctors: with a few thousand the planner rightly reads the small tables whole
    (3,650 clinics: a Seq Scan on doctors_clinic filtered by the cells; up to ~20,000: the
    listing join hashes a Seq Scan of doctors_doctorprofile), plans that would not tell a
    search without the cell filter from one with it."""
    rng = random.Random(3)
    places = [[random_global(rng)] for _ in range(30000)]
    places += [[point_near(rng, CAIRO, 15.0)] for _ in range(150)]
    seed(places, rng=rng)
    analyze()
    with CaptureQueriesContext(connection) as captured:
        r = api.get(f"/api/v1/doctors?lat={CAIRO[0]}&lng={CAIRO[1]}&radius_km=10")
    assert r.status_code == 200 and len(r.json()["items"]) == 20
    statements = [
        q["sql"]
        for q in captured.captured_queries
        if q["sql"].lstrip().upper().startswith("SELECT")
    ]
    assert any("doctors_clinic" in sql for sql in statements)
    plans = []
    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute("EXPLAIN " + sql)
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
    everything = "\n\n".join(plans)
    for table in BIG_TABLES:
        assert not re.search(rf"Seq Scan on {table}\b", everything), everything
    assert "doctors_clinic_h3_r7" in everything, everything


# --- 2. the database path against brute force, at the edge of the circle ------------------

# (centre, radius km): a city, circles over the pole and across the antimeridian, radius 0 at
# the pole and on the antimeridian (written -180; doctors there also at +180).
SEARCHES: list[tuple[tuple[float, float], float]] = [
    (CAIRO, 10.0),
    ((89.97, 45.0), 30.0),
    ((-0.5, 179.995), 8.0),
    ((90.0, 0.0), 0.0),
    ((90.0, 0.0), 1e-9),  # every longitude of the pole (radius 0 sees ~1e-13 km between them)
    ((0.0, -180.0), 0.0),
]


def walk(api: Client, query: str) -> list[tuple[str, float]]:
    """Every page of a search, followed by its cursors."""
    found: list[tuple[str, float]] = []
    cursor = None
    for _ in range(100):
        r = api.get("/api/v1/doctors?" + query + (f"&cursor={cursor}" if cursor else ""))
        assert r.status_code == 200, r.content
        found += [(i["id"], i["distance_km"]) for i in r.json()["items"]]
        cursor = r.json()["next"]
        if cursor is None:
            return found
    raise AssertionError("the pages never end")


def brute_force(
    center: tuple[float, float], radius_km: float, code: str = ""
) -> list[tuple[str, float]]:
    """Every clinic of every listed doctor (of the specialty), by the exact great-circle
    distance: each doctor once, at their nearest clinic, by (distance, id)."""
    clinics = Clinic.objects.filter(
        doctor__verification=Verification.VERIFIED,
        doctor__user__is_active=True,
        doctor__user__role=Role.DOCTOR,
    )
    if code:
        clinics = clinics.filter(doctor__specialties__code=code)
    nearest: dict[str, float] = {}
    for doctor_id, lat, lng in clinics.values_list("doctor_id", "latitude", "longitude"):
        d = geo.haversine_km(center[0], center[1], lat, lng)
        if d <= radius_km and d < nearest.get(str(doctor_id), float("inf")):
            nearest[str(doctor_id)] = d
    return sorted(nearest.items(), key=lambda item: (item[1], item[0]))


def test_database_search_matches_brute_force_at_the_edge(api: Client) -> None:
    """Thousands of doctors, half of them on, just inside or just outside the search circles
    (``make_points``), some with a second clinic: every page of the API, with and without
    a specialty, holds exactly the doctors within the radius, nearest first."""
    cardio = specialty()
    rng = random.Random(20240607)
    points = [
        (lat, lng)
        for n, (center, radius) in enumerate(SEARCHES)
        for _, lat, lng in make_points(random.Random(n), center, radius, 700 if radius else 200)
    ]
    rng.shuffle(points)
    places = [[p] for p in points]
    for place in rng.sample(places, len(places) // 10):  # a second clinic, anywhere among them
        place.append(rng.choice(points))
    # At the centres searched with radius 0, as written and as their aliases.
    centres = [[(90.0, 0.0)], [(90.0, 180.0)], [(90.0, -77.0)], [(0.0, -180.0)], [(0.0, 180.0)]]
    seed(centres + places, rng=rng, with_specialty=cardio, sure=len(centres))
    assert DoctorProfile.objects.count() > 2000
    for center, radius in SEARCHES:
        query = f"lat={center[0]}&lng={center[1]}&radius_km={radius}"
        for code, limit in (("", 50), ("cardiology", 37)):
            expected = [(i, round(d, 3)) for i, d in brute_force(center, radius, code)]
            assert expected, (center, radius, code)  # something to find
            got = walk(api, f"{query}&limit={limit}" + (f"&specialty={code}" if code else ""))
            assert [i for i, _ in got] == [i for i, _ in expected], (center, radius, code)
            assert got == expected


# --- 3. a rejection: audited with its reason, the doctor told in their language ------------


def test_a_rejection_is_audited_with_its_reason_and_told_in_arabic(
    api: Client, django_capture_on_commit_callbacks: Any
) -> None:
    user = make_user(role=Role.DOCTOR, first_name="Hany", last_name="Fahmy", language="ar")
    profile = DoctorProfile.objects.create(user=user)
    assert profile.verification == Verification.PENDING
    admin = make_user(role=Role.ADMIN)
    headers = bearer(login(api, admin.email)["access"])
    reason = "Licence number 4471 expired"
    with django_capture_on_commit_callbacks(execute=True):
        r = api.post(
            f"/api/v1/admin/verifications/{profile.id}",
            {"decision": "rejected", "reason": reason},
            content_type="application/json",
            headers={**headers, "Accept-Language": "en"},  # the admin's, not the doctor's
        )
    assert r.status_code == 200, r.content
    assert r.json()["verification"] == "rejected"
    assert r.json()["verification_reason"] == reason
    event = AuditEvent.objects.get(action="doctor.rejected", target_id=str(profile.id))
    assert event.actor_id == admin.pk and event.target_type == "doctor"
    assert event.data == {"reason": reason}
    told = Notification.objects.get(user=user, kind="doctor.verification")
    assert told.data == {"doctor_id": str(profile.id), "decision": "rejected"}
    template = "Your profile could not be verified. Reason: %(reason)s"
    with translation.override("ar"):
        body_ar = gettext(template) % {"reason": reason}
        title_ar = gettext("Your Telemed profile was not verified")
    assert body_ar != template % {"reason": reason}  # there is an Arabic text to use
    assert told.body == body_ar and reason in told.body and arabic(told.body)
    assert told.title == title_ar and arabic(told.title)


# --- 4. error envelopes ----------------------------------------------------------------


def test_a_forged_cursor_is_the_invalid_cursor_envelope_in_arabic(api: Client) -> None:
    with translation.override("ar"):
        message = str(InvalidCursor.message)
    assert arabic(message)
    forged = encode_cursor([0, ["far", "x"]], scope="doctors.search")  # signed, but no key
    for query in ("cursor=forged", f"cursor={forged}&lat={CAIRO[0]}&lng={CAIRO[1]}"):
        r = api.get(f"/api/v1/doctors?{query}", headers={"Accept-Language": "ar"})
        assert r.status_code == 400, query
        assert r.json() == {
            "error": {"code": "request.invalid_cursor", "message": message, "fields": {}}
        }


def test_an_unknown_place_is_place_not_found_in_english(api: Client) -> None:
    r = api.get("/api/v1/doctors", {"near": "Qwxzyville"}, headers={"Accept-Language": "en"})
    assert r.status_code == 422
    assert r.json() == {
        "error": {
            "code": "directory.place_not_found",
            "message": "We could not find this place. Check the spelling or try a nearby city.",
            "fields": {},
        }
    }
    assert str(PlaceNotFound.message) == r.json()["error"]["message"]
