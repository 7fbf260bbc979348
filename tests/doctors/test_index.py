"""The nearby index by specialty (DirectoryEntry) follows every write of its sources."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from doctors import geo, index, selectors
from doctors.models import Clinic, DirectoryEntry, DoctorProfile
from tests.doctors.factories import clinic_at, doctor, specialty
from tests.factories import bearer, login, make_user, post

pytestmark = pytest.mark.django_db
CAIRO = (30.0444, 31.2357)


def entries(profile=None):
    qs = DirectoryEntry.objects.all()
    if profile is not None:
        qs = qs.filter(doctor=profile)
    return sorted(
        (
            str(e.clinic_id),
            e.specialty_id,
            e.latitude,
            e.longitude,
            e.h3_r3,
            e.h3_r5,
            e.h3_r7,
            e.listed,
        )
        for e in qs
    )


def expected(profile):
    profile = DoctorProfile.objects.select_related("user").get(pk=profile.pk)
    listed = profile.verification == "verified" and profile.user.is_active
    return sorted(
        (str(c.id), s.id, c.latitude, c.longitude, c.h3_r3, c.h3_r5, c.h3_r7, listed)
        for c in Clinic.objects.filter(doctor=profile)
        for s in profile.specialties.all()
    )


def test_entries_follow_the_listing_state_whatever_saves_it():
    """Verification and account state, saved through the models (as the Django admin does)."""
    d = doctor(specialties=(specialty(),))
    assert [e[-1] for e in entries(d)] == [True]
    d.verification = "rejected"
    d.save()
    assert [e[-1] for e in entries(d)] == [False] and entries(d) == expected(d)
    d.verification = "verified"
    d.save()
    d.user.is_active = False
    d.user.save()
    assert [e[-1] for e in entries(d)] == [False] and entries(d) == expected(d)
    d.user.is_active = True
    d.user.save(update_fields=["is_active"])
    assert [e[-1] for e in entries(d)] == [True]
    d.user.is_active = False
    d.user.save(update_fields=["last_login"])  # a login's save does not touch the index
    assert [e[-1] for e in entries(d)] == [True]
    pending = doctor(specialties=(specialty(),), verified=False)
    assert [e[-1] for e in entries(pending)] == [False]


def test_entries_follow_clinics_and_specialties():
    cardio, derm = specialty("cardiology"), specialty("dermatology", "Dermatology", "الجلدية")
    d = doctor(specialties=(cardio,))
    assert len(entries(d)) == 1 and entries(d) == expected(d)
    second = clinic_at(d, 31.2001, 29.9187)  # a second clinic
    assert len(entries(d)) == 2 and entries(d) == expected(d)
    d.specialties.add(derm)  # forward m2m
    assert len(entries(d)) == 4 and entries(d) == expected(d)
    second.latitude, second.longitude, second.h3_r7 = 30.1, 31.3, 123
    second.save()  # a moved clinic
    assert entries(d) == expected(d) and 123 in {e[6] for e in entries(d)}
    second.delete()
    assert len(entries(d)) == 2 and entries(d) == expected(d)
    derm.doctors.remove(d)  # reverse m2m
    assert len(entries(d)) == 1 and entries(d) == expected(d)
    cardio.doctors.clear()  # reverse clear
    assert entries(d) == [] == expected(d)
    d.specialties.set([derm])
    assert len(entries(d)) == 1 and entries(d) == expected(d)
    derm.delete()  # a deleted specialty takes its entries along
    assert entries() == []


def test_rebuild_repairs_a_damaged_index():
    cardio = specialty()
    a, b = doctor(specialties=(cardio,)), doctor(specialties=(cardio,), lat=31.2, lng=29.9)
    DirectoryEntry.objects.filter(doctor=a).delete()
    DirectoryEntry.objects.filter(doctor=b).update(h3_r7=1, listed=False)
    assert index.rebuild() == 2
    assert entries(a) == expected(a) and entries(b) == expected(b)


@pytest.mark.django_db(transaction=True)  # cache invalidation runs on commit
def test_the_profile_and_clinic_endpoints_keep_the_search_right(api):
    cardio = specialty()
    d = doctor(specialties=())
    headers = bearer(login(api, d.user.email)["access"])
    search = f"/api/v1/doctors?lat={CAIRO[0]}&lng={CAIRO[1]}&radius_km=5&specialty=cardiology"
    assert api.get(search).json()["items"] == []
    r = api.patch(
        "/api/v1/doctor/profile",
        {"specialties": [cardio.code]},
        content_type="application/json",
        headers=headers,
    )
    assert r.status_code == 200, r.content
    assert [i["id"] for i in api.get(search).json()["items"]] == [str(d.id)]
    clinic = Clinic.objects.get(doctor=d)
    r = api.patch(
        f"/api/v1/doctor/clinics/{clinic.id}",
        {"latitude": 31.2001, "longitude": 29.9187},  # moved to Alexandria
        content_type="application/json",
        headers=headers,
    )
    assert r.status_code == 200, r.content
    assert api.get(search).json()["items"] == []
    far = search.replace(f"lat={CAIRO[0]}&lng={CAIRO[1]}", "lat=31.2001&lng=29.9187")
    assert [i["id"] for i in api.get(far).json()["items"]] == [str(d.id)]
    r = post(
        api,
        "/api/v1/doctor/clinics",
        {"name": "B", "address": "2 Nile St", "latitude": CAIRO[0], "longitude": CAIRO[1]},
        **headers,
    )
    assert r.status_code in (200, 201), r.content
    assert [i["id"] for i in api.get(search).json()["items"]] == [str(d.id)]
    assert entries(d) == expected(d)


@pytest.mark.django_db(transaction=True)
def test_unlisted_doctors_are_never_found_through_the_index(api):
    cardio = specialty()
    d = doctor(specialties=(cardio,), first_name="Salma")
    admin = make_user(role=Role.ADMIN)
    admin_headers = bearer(login(api, admin.email)["access"])
    search = f"/api/v1/doctors?lat={CAIRO[0]}&lng={CAIRO[1]}&radius_km=5&specialty=cardiology"
    assert [i["id"] for i in api.get(search).json()["items"]] == [str(d.id)]  # now cached
    r = post(api, f"/api/v1/admin/users/{d.user.pk}/deactivate", {}, **admin_headers)
    assert r.status_code == 200, r.content
    assert api.get(search).json()["items"] == []  # the cached page was dropped
    r = post(api, f"/api/v1/admin/users/{d.user.pk}/reactivate", {}, **admin_headers)
    assert r.status_code == 200, r.content
    assert [i["id"] for i in api.get(search).json()["items"]] == [str(d.id)]
    r = api.patch(
        f"/api/v1/admin/users/{d.user.pk}",
        {"first_name": "Mona"},
        content_type="application/json",
        headers=admin_headers,
    )
    assert r.status_code == 200, r.content
    assert api.get("/api/v1/doctors?name=Salma").json()["items"] == []
    assert [i["id"] for i in api.get("/api/v1/doctors?name=Mona").json()["items"]] == [str(d.id)]
    r = post(
        api,
        f"/api/v1/admin/verifications/{d.id}",
        {"decision": "rejected", "reason": "x"},
        **admin_headers,
    )
    assert r.status_code == 200, r.content
    assert api.get(search).json()["items"] == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="EXPLAIN of PostgreSQL")
def test_the_specialty_search_reads_only_the_covering_index():
    """EXPLAIN of the very query the search runs: one index, no join, no sequential scan."""
    cardio = specialty()
    for i in range(30):
        doctor(specialties=(cardio,), lat=30.04 + i / 1000, lng=31.23)
    filters = selectors.SearchFilters(
        specialty="cardiology", latitude=CAIRO[0], longitude=CAIRO[1], radius_km=10
    )
    with CaptureQueriesContext(connection) as queries:
        assert selectors._nearby(filters)
    sql = next(q["sql"] for q in queries.captured_queries if "h3_r" in q["sql"])
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # small tables: ask which plan is possible
        cursor.execute("EXPLAIN " + sql)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
    column = geo.column_for(geo.covering(*CAIRO, 10)[0])
    assert f"directory_entry_{column}_idx" in plan
    assert "Seq Scan" not in plan
    assert "doctors_doctorprofile" not in plan and "accounts_user" not in plan  # no join
