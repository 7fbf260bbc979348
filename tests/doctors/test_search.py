"""The public directory: filters, sorts, distance, pagination, caching, bad input."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doctors import geo
from doctors.models import Clinic, DoctorProfile
from doctors.schemas import DoctorOut
from tests.doctors.factories import clinic_at, doctor, specialty

pytestmark = pytest.mark.django_db
CAIRO = (30.0444, 31.2357)
GIZA = (30.0131, 31.2089)  # ~4.4 km from Cairo centre
ALEXANDRIA = (31.2001, 29.9187)  # ~180 km


def ids(response):
    return [item["id"] for item in response.json()["items"]]


def test_only_verified_active_doctors_are_listed(api):
    shown = doctor()
    doctor(verified=False)
    inactive = doctor()
    inactive.user.is_active = False
    inactive.user.save()
    assert ids(api.get("/api/v1/doctors")) == [str(shown.id)]


def test_nearby_search_sorted_by_distance_with_distance_km(api):
    near = doctor(lat=GIZA[0], lng=GIZA[1])
    here = doctor(lat=CAIRO[0], lng=CAIRO[1])
    doctor(lat=ALEXANDRIA[0], lng=ALEXANDRIA[1])
    r = api.get(f"/api/v1/doctors?lat={CAIRO[0]}&lng={CAIRO[1]}&radius_km=10")
    assert r.status_code == 200
    items = r.json()["items"]
    assert [i["id"] for i in items] == [str(here.id), str(near.id)]
    assert items[0]["distance_km"] == 0.0
    assert items[1]["distance_km"] == pytest.approx(geo.haversine_km(*CAIRO, *GIZA), abs=0.01)


def test_a_doctor_with_two_clinics_is_listed_once_at_the_nearest(api):
    d = doctor(lat=ALEXANDRIA[0], lng=ALEXANDRIA[1])
    clinic_at(d, *GIZA)
    items = api.get(f"/api/v1/doctors?lat={CAIRO[0]}&lng={CAIRO[1]}&radius_km=300").json()["items"]
    assert [i["id"] for i in items] == [str(d.id)]
    assert items[0]["distance_km"] == pytest.approx(geo.haversine_km(*CAIRO, *GIZA), abs=0.01)


def test_filters(api):
    cardio, derm = specialty(), specialty("dermatology", "Dermatology", "الأمراض الجلدية")
    a = doctor(
        specialties=(cardio,),
        languages=",ar,en,",
        fee_minor=30000,
        offers_video=True,
        first_name="Amira",
    )
    b = doctor(specialties=(derm,), languages=",en,", fee_minor=50000, first_name="Basel")
    b.rating_sum, b.rating_count = 9, 2
    b.save()
    assert ids(api.get("/api/v1/doctors?specialty=cardiology")) == [str(a.id)]
    assert ids(api.get("/api/v1/doctors?language=ar")) == [str(a.id)]
    assert ids(api.get("/api/v1/doctors?mode=video")) == [str(a.id)]
    assert ids(api.get("/api/v1/doctors?fee_min=400")) == [str(b.id)]
    assert ids(api.get("/api/v1/doctors?fee_max=300.00")) == [str(a.id)]
    # fees are read in each doctor's own currency: 12.250 KWD is more than 10, 9.99 EGP not
    type(a).objects.filter(pk=a.pk).update(currency="KWD", fee_minor=12250)
    assert ids(api.get("/api/v1/doctors?fee_min=10&fee_max=13")) == [str(a.id)]
    assert ids(api.get("/api/v1/doctors?fee_min=12.251&currency=KWD")) == []
    card = api.get(f"/api/v1/doctors/{a.id}").json()
    assert card["fee"] == {"amount": "12.250", "currency": "KWD"}
    # and sorted by the same amounts, in each doctor's own currency: 60.000 KWD after
    # 50.00 EGP, 20.000 KWD before it (20000 minor units against 5000)
    assert ids(api.get("/api/v1/doctors?sort=fee")) == [str(a.id), str(b.id)]
    type(a).objects.filter(pk=a.pk).update(fee_minor=60000)  # 60.000 KWD
    type(b).objects.filter(pk=b.pk).update(fee_minor=5000)  # 50.00 EGP
    # (another limit each time: .update() does not empty the directory's cache)
    assert ids(api.get("/api/v1/doctors?sort=fee&limit=19")) == [str(b.id), str(a.id)]
    type(a).objects.filter(pk=a.pk).update(fee_minor=20000)  # 20.000 KWD
    assert ids(api.get("/api/v1/doctors?sort=fee&limit=18")) == [str(a.id), str(b.id)]
    near = "lat=30.0444&lng=31.2357&radius_km=50"
    assert ids(api.get(f"/api/v1/doctors?sort=fee&{near}")) == [str(a.id), str(b.id)]
    type(b).objects.filter(pk=b.pk).update(fee_minor=50000)
    type(a).objects.filter(pk=a.pk).update(currency="EGP", fee_minor=30000)
    # fees compared within one currency when one is given
    type(b).objects.filter(pk=b.pk).update(currency="USD")
    assert ids(api.get("/api/v1/doctors?fee_min=400&currency=USD")) == [str(b.id)]
    assert ids(api.get("/api/v1/doctors?fee_min=400&currency=EGP")) == []
    assert api.get("/api/v1/doctors?currency=usd").status_code == 422
    assert ids(api.get("/api/v1/doctors?min_rating=4.5")) == [str(b.id)]
    assert ids(api.get("/api/v1/doctors?name=amira")) == [str(a.id)]
    assert ids(api.get("/api/v1/doctors?city=cairo&sort=fee")) == [str(a.id), str(b.id)]
    # a clinic's city is stored in the language it was geocoded in: either name finds it
    from doctors.geocoding import city_key

    b.clinics.update(city="القاهرة", city_names=city_key("القاهرة"))
    assert ids(api.get("/api/v1/doctors?city=cairo&sort=fee")) == [str(a.id), str(b.id)]
    assert ids(api.get("/api/v1/doctors?city=القاهرة&sort=fee")) == [str(a.id), str(b.id)]
    assert ids(api.get("/api/v1/doctors?city=Alexandria")) == []


def test_specialty_names_follow_the_language(api):
    doctor(specialties=(specialty(),))
    item = api.get("/api/v1/doctors", headers={"Accept-Language": "ar"}).json()["items"][0]
    assert item["specialties"] == [{"code": "cardiology", "name": "أمراض القلب"}]
    assert item["fee"]["amount"].count(".") == 1


def test_cards_are_exactly_the_documented_schema(api):
    """The search and profile cards are built without pydantic: they must still be exactly
    what DoctorOut (the OpenAPI schema) says, field for field."""
    d = doctor(specialties=(specialty(),), languages=",ar,en,", offers_video=True, fee_minor=12345)
    clinic_at(d, *GIZA)
    d.rating_sum, d.rating_count = 9, 2
    d.save()
    search = api.get(f"/api/v1/doctors?lat={CAIRO[0]}&lng={CAIRO[1]}").json()["items"]
    profile = api.get(f"/api/v1/doctors/{d.id}").json()
    for card in (search[0], profile):
        assert DoctorOut.model_validate(card).model_dump(mode="json") == card
    assert search[0]["distance_km"] is not None and profile["distance_km"] is None
    assert search[0]["rating"] == 4.5 and search[0]["fee"] == {
        "amount": "123.45",
        "currency": "EGP",
    }
    assert sorted(c["latitude"] for c in profile["clinics"]) == [GIZA[0], CAIRO[0]]


def test_pagination_walks_every_doctor_once(api):
    made = {str(doctor(lat=CAIRO[0] + i * 0.001, lng=CAIRO[1]).id) for i in range(7)}
    seen: list[str] = []
    url: str | None = f"/api/v1/doctors?lat={CAIRO[0]}&lng={CAIRO[1]}&limit=3"
    while url:
        page = api.get(url).json()
        seen += [i["id"] for i in page["items"]]
        url = (
            f"/api/v1/doctors?lat={CAIRO[0]}&lng={CAIRO[1]}&limit=3&cursor={page['next']}"
            if page["next"]
            else None
        )
    assert len(seen) == 7 and set(seen) == made


@pytest.mark.parametrize("query", ["", "&sort=name", "&sort=fee", "&near"])
def test_a_doctor_listed_between_two_pages_shifts_nothing(api, query):
    """The cursor remembers the last doctor shown (the sort values of that row, or the
    doctor in a ranked list), not a count: a doctor listed ahead of it meanwhile neither
    repeats one already seen nor hides one not yet seen; a doctor delisted neither."""
    near = f"&lat={CAIRO[0]}&lng={CAIRO[1]}&radius_km=10"
    query = near if query == "&near" else query
    made = [
        doctor(
            lat=CAIRO[0] + 0.001 * (i + 1),
            lng=CAIRO[1],
            rating_sum=5 - i,
            rating_count=1,
            last_name=f"Name{i}",
            fee_minor=1000 * (i + 1),
        )
        for i in range(4)
    ]
    base = f"/api/v1/doctors?limit=2{query}"
    first = api.get(base).json()
    assert [i["id"] for i in first["items"]] == [str(made[0].id), str(made[1].id)]
    ahead = doctor(
        lat=CAIRO[0], lng=CAIRO[1], rating_sum=5, rating_count=1, last_name="Aaron", fee_minor=1
    )  # first in every order: listed ahead of the cursor
    type(made[2]).objects.filter(pk=made[2].pk).update(verification="rejected")
    from doctors.index import relist

    relist(doctor_ids=[made[2].pk])
    second = api.get(f"{base}&cursor={first['next']}").json()
    assert [i["id"] for i in second["items"]] == [str(made[3].id)], query
    assert second["next"] is None
    assert str(ahead.id) not in {i["id"] for i in first["items"] + second["items"]}


T0 = datetime(2030, 1, 1, 8, tzinfo=UTC)


@pytest.mark.parametrize(
    "query",
    [
        "",
        "&available_on=2030-01-01",
        f"&lat={CAIRO[0]}&lng={CAIRO[1]}",
        f"&sort=rating&lat={CAIRO[0]}&lng={CAIRO[1]}&available_on=2030-01-01",
    ],
)
def test_a_doctor_whose_rank_changes_between_pages_hides_nobody(api, monkeypatch, query):
    """The next page starts after the last row's sort key, not after that doctor wherever
    they are now: a rating (or a distance) that changes moves only them."""
    from doctors import selectors

    monkeypatch.setattr(
        selectors, "AVAILABILITY", lambda ids, on, now, mode: dict.fromkeys(ids, T0)
    )
    made = [
        doctor(lat=CAIRO[0] + 0.001 * i, lng=CAIRO[1], rating_sum=50 - i, rating_count=10)
        for i in range(6)
    ]
    base = f"/api/v1/doctors?limit=2{query}"
    first = api.get(base).json()
    assert [i["id"] for i in first["items"]] == [str(made[0].id), str(made[1].id)]
    DoctorProfile.objects.filter(pk=made[1].pk).update(rating_sum=10, rating_count=10)
    Clinic.objects.filter(doctor=made[1]).update(latitude=CAIRO[0] + 0.009)
    second = api.get(f"{base}&cursor={first['next']}").json()
    assert [i["id"] for i in second["items"]] == [str(made[2].id), str(made[3].id)], query


def test_next_available_pages_follow_the_time_not_the_doctor(api, monkeypatch):
    from doctors import selectors

    made = [doctor() for _ in range(6)]
    slots = {str(d.id): T0 + timedelta(hours=i) for i, d in enumerate(made)}
    monkeypatch.setattr(
        selectors,
        "AVAILABILITY",
        lambda ids, on, now, mode: {i: slots[str(i)] for i in ids if str(i) in slots},
    )
    base = "/api/v1/doctors?limit=2&sort=next_available"
    first = api.get(base).json()
    assert [i["id"] for i in first["items"]] == [str(made[0].id), str(made[1].id)]
    slots[str(made[1].id)] = T0 + timedelta(hours=10)  # their first slot was just booked
    seen, cursor = [], first["next"]
    while cursor:
        page = api.get(f"{base}&cursor={cursor}").json()
        seen += [i["id"] for i in page["items"]]
        cursor = page["next"]
    assert seen == [str(d.id) for d in made[2:]] + [str(made[1].id)]


@pytest.mark.parametrize(
    "query",
    [
        "&sort=name",
        f"&sort=name&lat={CAIRO[0]}&lng={CAIRO[1]}",
        "&sort=name&available_on=2030-01-01",
    ],
)
def test_a_name_sorted_walk_with_the_longest_arabic_names_reaches_everyone(api, monkeypatch, query):
    """The next page's cursor carries the last row's names: the server takes back every
    cursor it gives, even for names of 150 Arabic letters."""
    from doctors import selectors

    monkeypatch.setattr(
        selectors, "AVAILABILITY", lambda ids, on, now, mode: dict.fromkeys(ids, T0)
    )
    letters = [chr(c) for c in range(0x0621, 0x064A)]
    rnd = random.Random(1)
    made = {
        str(
            doctor(
                first_name="".join(rnd.choice(letters) for _ in range(150)),
                last_name="".join(rnd.choice(letters) for _ in range(150)),
            ).id
        )
        for _ in range(3)
    }
    seen: list[str] = []
    url: str | None = f"/api/v1/doctors?limit=1{query}"
    while url:
        r = api.get(url)
        assert r.status_code == 200, r.content[:300]
        seen += [i["id"] for i in r.json()["items"]]
        url = (
            f"/api/v1/doctors?limit=1{query}&cursor={r.json()['next']}"
            if r.json()["next"]
            else None
        )
    assert sorted(seen) == sorted(made)


def test_a_forged_or_foreign_search_cursor_is_400(api):
    from core.pagination import encode_cursor

    def get(values, query=""):
        cursor = encode_cursor(values, scope="doctors.search")
        return api.get(f"/api/v1/doctors?cursor={cursor}{query}")

    doctor()
    assert get([0, ["not a number", 1, "x"]]).status_code == 400  # rating's values
    assert get([0, ["12.5", "not-a-uuid"]], "&sort=fee").status_code == 400
    assert get([0, [1, 2]], "&sort=name").status_code == 400  # too few values
    assert get([0, [{"a": 1}, 2, 3]]).status_code == 400
    for bad in ("a\x00", "\ud800"):  # text the database cannot take
        assert get([0, [bad, "b", str(doctor().id)]], "&sort=name").status_code == 400
    assert get([0, ["not a time", "x"]], "&sort=next_available").status_code == 400
    assert get([0, ["2030-01-01T08:00:00", "x"]], "&sort=next_available").status_code == 400
    assert get([0, ["far", "x"]], f"&lat={CAIRO[0]}&lng={CAIRO[1]}").status_code == 400
    assert get([-1, ""]).status_code == 400
    assert get([10**20, ""]).status_code == 400  # an OFFSET PostgreSQL cannot take
    assert get([0, 5]).status_code == 400
    assert get([0, ""]).status_code == 200  # a cursor of before: an offset
    assert get([2, ""], f"&lat={CAIRO[0]}&lng={CAIRO[1]}").status_code == 200


def test_list_query_count_is_fixed(api):
    for i in range(3):
        doctor(lat=CAIRO[0] + i * 0.001, lng=CAIRO[1], specialties=(specialty(),))
    with CaptureQueriesContext(connection) as few:
        api.get(f"/api/v1/doctors?lat={CAIRO[0]}&lng={CAIRO[1]}&specialty=cardiology")
    for i in range(10):
        doctor(lat=CAIRO[0] + i * 0.002, lng=CAIRO[1] + 0.001, specialties=(specialty(),))
    with CaptureQueriesContext(connection) as many:
        api.get(f"/api/v1/doctors?lat={CAIRO[0]}&lng={CAIRO[1]}&specialty=cardiology&limit=50")
    assert len(many) == len(few)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("lat=91&lng=0", "lat"),
        ("lat=0&lng=181", "lng"),
        ("lat=30", "lng"),
        ("lat=30&lng=31&radius_km=-1", "radius_km"),
        ("lat=30&lng=31&radius_km=20000", "radius_km"),
        ("limit=0", "limit"),
        ("sort=sideways", "sort"),
        ("mode=telepathy", "mode"),
        ("min_rating=9", "min_rating"),
        ("language=english", "language"),
        ("available_on=0", "available_on"),  # not 1970-01-01 (pydantic's Unix time)
        ("available_on=9999-12-31", "available_on"),  # the day after would overflow
    ],
)
def test_bad_search_input_is_422(api, query, field):
    r = api.get(f"/api/v1/doctors?{query}")
    assert r.status_code == 422
    assert field in r.json()["error"]["fields"]


def test_unknown_specialty_and_forged_cursor(api):
    r = api.get("/api/v1/doctors?specialty=astrology", headers={"Accept-Language": "ar"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "directory.unknown_specialty"
    assert any("\u0600" <= ch <= "\u06ff" for ch in r.json()["error"]["message"])
    assert api.get("/api/v1/doctors?cursor=forged").status_code == 400


def test_etag_and_invalidation(api, django_capture_on_commit_callbacks):
    d = doctor(designation="Consultant")
    first = api.get(f"/api/v1/doctors/{d.id}")
    assert first.status_code == 200 and first["ETag"]
    assert (
        api.get(f"/api/v1/doctors/{d.id}", headers={"If-None-Match": first["ETag"]}).status_code
        == 304
    )
    # compared weakly (a proxy that compresses makes it W/"..."), and * matches
    for tag in (f"W/{first['ETag']}", f'"other", {first["ETag"]}', "*"):
        assert api.get(f"/api/v1/doctors/{d.id}", headers={"If-None-Match": tag}).status_code == 304
    assert (
        api.get(f"/api/v1/doctors/{d.id}", headers={"If-None-Match": '"other"'}).status_code == 200
    )
    assert "Cookie" in first["Vary"] and "Accept-Language" in first["Vary"]
    from doctors.services import doctor_profile_update

    with django_capture_on_commit_callbacks(execute=True):
        doctor_profile_update(user=d.user, changes={"designation": "Professor"})
    second = api.get(f"/api/v1/doctors/{d.id}", headers={"If-None-Match": first["ETag"]})
    assert second.status_code == 200
    assert second.json()["designation"] == "Professor"


def test_unknown_or_unverified_profile_is_404(api):
    pending = doctor(verified=False)
    assert api.get(f"/api/v1/doctors/{pending.id}").status_code == 404
    assert api.get("/api/v1/doctors/00000000-0000-0000-0000-000000000000").status_code == 404


@pytest.mark.skipif(connection.vendor != "postgresql", reason="EXPLAIN of PostgreSQL")
def test_nearby_query_uses_the_index_not_a_scan(api):
    rng = random.Random(7)
    for _ in range(40):
        doctor(lat=rng.uniform(-60, 60), lng=rng.uniform(-179, 179))
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # small tables: ask which plan is possible
        resolution, cells = geo.covering(*CAIRO, 10)
        qs = Clinic.objects.filter(**{f"{geo.column_for(resolution)}__in": cells}).values_list(
            "doctor_id"
        )
        plan = qs.explain()
        cursor.execute("RESET enable_seqscan")
    assert "Seq Scan on doctors_clinic" not in plan
    assert "doctors_clinic_h3_r" in plan


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    lat=st.floats(-89.9, 89.9),
    lng=st.floats(-179.99, 179.99),
    radius=st.sampled_from([0.0, 1.0, 5.0, 25.0, 120.0, 500.0]),
    code=st.sampled_from(["", "cardiology", "dermatology", "pediatrics"]),
)
def test_database_search_matches_brute_force(api, lat, lng, radius, code):
    """Through the API, with and without a specialty (the DirectoryEntry path), against the
    exact distance of every clinic of every listed doctor that has the specialty."""
    kinds = [specialty(c, c.title(), c) for c in ("cardiology", "dermatology", "pediatrics")]
    if not DoctorProfile.objects.exists():
        rng = random.Random(11)
        for _ in range(150):
            base_lat, base_lng = rng.choice(
                [
                    CAIRO,
                    (89.95, 0.0),
                    (-89.95, 45.0),
                    (0.0, 179.99),
                    (0.0, -179.99),
                    (rng.uniform(-80, 80), rng.uniform(-180, 180)),
                ]
            )
            d = doctor(
                lat=max(-90, min(90, base_lat + rng.gauss(0, 1))),
                lng=((base_lng + rng.gauss(0, 1) + 180) % 360) - 180,
                specialties=tuple(rng.sample(kinds, rng.randint(0, 2))),
                verified=rng.random() > 0.1,
            )
            if rng.random() < 0.3:  # a second clinic, often in another cell
                clinic_at(d, max(-90, min(90, base_lat + rng.gauss(0, 2))), base_lng)
    rows = Clinic.objects.filter(doctor__verification="verified")
    if code:
        rows = rows.filter(doctor__specialties__code=code)
    nearest: dict = {}
    for i, km in geo.nearest_first(
        (lat, lng), rows.values_list("doctor_id", "latitude", "longitude"), radius
    ):
        nearest.setdefault(str(i), km)
    ranked = sorted(nearest.items(), key=lambda item: (item[1], item[0]))
    expected = [(i, round(km, 3)) for i, km in ranked]
    query = f"lat={lat}&lng={lng}&radius_km={radius}&limit=50" + (
        f"&specialty={code}" if code else ""
    )
    r = api.get(f"/api/v1/doctors?{query}")
    assert r.status_code == 200
    got = [(i["id"], i["distance_km"]) for i in r.json()["items"]]
    assert got == expected[:50]


@pytest.mark.parametrize("near", ["Cairo", "القاهرة", "Tahrir Square, Cairo, Egypt"])
def test_search_near_a_place_in_english_or_arabic(api, near):
    here = doctor(lat=CAIRO[0], lng=CAIRO[1])
    doctor(lat=ALEXANDRIA[0], lng=ALEXANDRIA[1])
    r = api.get("/api/v1/doctors", {"near": near, "radius_km": 25})
    assert r.status_code == 200
    assert ids(r) == [str(here.id)]
    assert r.json()["items"][0]["distance_km"] < 25


@pytest.mark.parametrize(
    ("near", "code"),
    [
        ("", "directory.invalid_place"),
        ("   ", "directory.invalid_place"),
        ("Qwxzyville", "directory.place_not_found"),
        ("Cairo\x07", "directory.invalid_place"),
        ("x" * 201, "request.invalid"),
    ],
)
def test_bad_near_is_422(api, near, code):
    r = api.get("/api/v1/doctors", {"near": near}, headers={"Accept-Language": "ar"})
    assert r.status_code == 422
    assert r.json()["error"]["code"] == code
    assert any("\u0600" <= ch <= "\u06ff" for ch in r.json()["error"]["message"])


def test_the_directory_answers_and_writes_commit_while_redis_is_away(
    api, monkeypatch, django_capture_on_commit_callbacks
):
    """The cache only saves work: a search answers without it, and a change already
    committed is not turned into an error (nor stops the commit hooks after it)."""
    from django.core.cache import cache

    from doctors.services import doctor_profile_update

    d = doctor(designation="Consultant")

    def away(*args, **kwargs):
        raise ConnectionError("Redis is away")

    for name in ("get", "get_many", "set", "add", "incr"):
        monkeypatch.setattr(cache, name, away)
    r = api.get(f"/api/v1/doctors/{d.id}")
    assert r.status_code == 200 and r.json()["designation"] == "Consultant"
    after = []
    with django_capture_on_commit_callbacks(execute=True):
        doctor_profile_update(user=d.user, changes={"designation": "Professor"})
        transaction.on_commit(lambda: after.append("ran"))
    assert after == ["ran"]
    assert api.get(f"/api/v1/doctors/{d.id}").json()["designation"] == "Professor"


def check_fee_order() -> None:
    """Run on SQLite by the test below (a process of its own)."""
    from core import money

    cheaper, dearer = doctor(fee_minor=1210), doctor(fee_minor=1290)  # 12.10 and 12.90 EGP
    rows = DoctorProfile.objects.annotate(fee=money.sort_key("fee_minor", "currency"))
    for tie_break in ("id", "-id"):  # whichever id is smaller
        found = list(rows.order_by("fee", tie_break).values_list("id", flat=True))
        assert found == [cheaper.pk, dearer.pk], found


def test_the_fee_sort_keeps_the_decimals_on_sqlite(tmp_path):
    """SQLite divides integers as integers: the sort key is an integer of thousandths."""
    from tests.procs import run_on_sqlite

    run_on_sqlite(
        "from tests.doctors.test_search import check_fee_order\ncheck_fee_order()\n"
        "print('sqlite ok')\n",
        tmp_path,
    )
