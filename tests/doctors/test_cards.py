"""The search's hand-written PostgreSQL (doctors.queries) against the ORM it replaces there:
the same cards and the same rankings, in fewer statements; cached pages follow changes."""

import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from doctors import queries, selectors, services
from doctors.models import DoctorProfile
from tests.doctors.factories import clinic_at, doctor, specialty

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="doctors.queries is PostgreSQL's"),
]
CAIRO = (30.0444, 31.2357)


def varied_doctors(rng: random.Random, n: int) -> list[DoctorProfile]:
    kinds = [
        specialty(),
        specialty("dermatology", "Dermatology", "الأمراض الجلدية"),
        specialty("pediatrics", "Pediatrics", "طب الأطفال"),
    ]
    made = []
    for i in range(n):
        d = doctor(
            lat=None if i % 7 == 0 else CAIRO[0] + rng.gauss(0, 0.05),
            lng=CAIRO[1] + rng.gauss(0, 0.05),
            specialties=tuple(rng.sample(kinds, rng.randint(0, 3))),
            first_name=rng.choice(["Omar", "عمر", "", "Zoë"]),
            last_name=rng.choice(["Haddad", "الحداد", "O'Brien"]),
            designation=rng.choice(["", "Consultant", "استشاري"]),
            bio_en=rng.choice(["", "Sees children."]),
            bio_ar=rng.choice(["", "يستقبل الأطفال."]),
            languages=rng.choice([",", ",ar,", ",ar,en,fr,"]),
            fee_minor=rng.randint(0, 10**6),
            offers_video=rng.random() < 0.5,
            offers_chat=rng.random() < 0.5,
            years_experience=rng.randint(0, 60),
            # 9/8 = 1.125 exactly: Python's float round gives 1.12; shown half up, 1.13.
            rating_sum=rng.choice([0, 9, 7, 23]),
            rating_count=rng.choice([0, 8, 3]) if i % 3 else 0,
        )
        for _ in range(rng.randint(0, 2)):  # more clinics, full-precision coordinates
            clinic_at(d, rng.uniform(-89, 89), rng.uniform(-180, 180), city=rng.choice(["A", "B"]))
        made.append(d)
    return made


def test_cards_from_one_statement_equal_the_orm_ones():
    rng = random.Random(4)
    made = varied_doctors(rng, 40)
    ids = [str(d.id) for d in made]
    rng.shuffle(ids)
    ids.insert(5, "00000000-0000-0000-0000-000000000000")  # no such doctor: left out
    with CaptureQueriesContext(connection) as one:
        fast = selectors.cards(ids)
    assert len(one) == 1
    by_orm = {row[0]: selectors._card(*row) for row in selectors._card_rows(ids)}
    assert fast == [by_orm[i] for i in ids if i in by_orm]
    assert [c.id for c in fast] == [i for i in ids if i != "00000000-0000-0000-0000-000000000000"]
    assert any(c.rating == 1.13 for c in fast)  # 9/8, rounded half up (as min_rating reads it)


def test_card_floats_keep_every_bit():
    d = doctor(lat=None, lng=None)
    lat, lng = 30.123456789012345, -179.98765432109876
    clinic_at(d, lat, lng)
    (card,) = selectors.cards([d.id])
    assert (card.clinics[0]["latitude"], card.clinics[0]["longitude"]) == (lat, lng)


def test_the_fast_candidates_equal_the_orm_ones():
    """``specialty=`` alone reads doctors.queries.entries; any other filter goes through the
    ORM. A filter every doctor passes must not change the page."""
    rng = random.Random(9)
    varied_doctors(rng, 60)
    for _ in range(20):
        lat, lng = CAIRO[0] + rng.gauss(0, 0.05), CAIRO[1] + rng.gauss(0, 0.05)
        for code in ("cardiology", "dermatology", "pediatrics"):
            base = dict(specialty=code, latitude=lat, longitude=lng, radius_km=rng.uniform(0, 15))
            fast = selectors._nearby(selectors.SearchFilters(**base))
            orm = selectors._nearby(selectors.SearchFilters(**base, fee_min=0))
            assert fast == orm


def test_a_nearby_search_by_specialty_is_two_statements(api, django_assert_num_queries):
    for i in range(5):
        doctor(lat=CAIRO[0] + i * 0.001, lng=CAIRO[1], specialties=(specialty(),))
    with django_assert_num_queries(2):  # candidates, then the page's cards
        r = api.get(f"/api/v1/doctors?lat={CAIRO[0]}&lng={CAIRO[1]}&specialty=cardiology")
    assert len(r.json()["items"]) == 5
    assert queries.entries(specialty="astrology", resolution=7, cells=[1, 2]) == []


def test_a_cached_page_is_not_served_after_a_change(api, django_capture_on_commit_callbacks):
    d = doctor(specialties=(specialty(),), designation="Consultant")
    url = f"/api/v1/doctors?lat={CAIRO[0]}&lng={CAIRO[1]}&specialty=cardiology"
    first = api.get(url)
    assert first.json()["items"][0]["designation"] == "Consultant"
    with CaptureQueriesContext(connection) as again:
        assert api.get(url)["ETag"] == first["ETag"]
    assert len(again) == 0  # served from the cache
    with django_capture_on_commit_callbacks(execute=True):
        services.doctor_profile_update(user=d.user, changes={"designation": "Professor"})
    assert api.get(url).json()["items"][0]["designation"] == "Professor"
