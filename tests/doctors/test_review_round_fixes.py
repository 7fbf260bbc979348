"""Defects a review found in the directory: a city tested on other clinics than those a nearby
search measures, erased doctors verified and queued, two index rebuilds of one doctor racing,
a min_rating that missed a doctor shown at the threshold, Arabic names folded before NFKD
(and names written with or without a space), an untranslated unknown-specialty message."""

from __future__ import annotations

import importlib
import random
from typing import Any

import pytest
from django.apps import apps
from django.db import transaction
from django.test import Client

from accounts.errors import AccountErased
from accounts.models import Role
from accounts.services import account_delete
from doctors import geo, index, selectors, services
from doctors.geocoding import city_key, name_key, normalise
from doctors.models import Clinic, DirectoryEntry, DoctorProfile, Verification
from realtime.models import Notification
from tests.accounts.admin_site import change_form, staff_client, superuser
from tests.bookings.test_lock_order import race
from tests.doctors.factories import clinic_at, doctor, specialty
from tests.factories import bearer, login, make_user

pytestmark = pytest.mark.django_db
CAIRO = (30.0444, 31.2357)
ALEX = (31.2001, 29.9187)


def items(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.content[:300]
    return response.json()["items"]


def ids(response: Any) -> list[str]:
    return [item["id"] for item in items(response)]


# --- 1. with a location, the city is the measured clinics' ---------------------------------


def test_a_city_with_a_location_is_tested_on_the_clinics_measured(api: Client) -> None:
    """A doctor with a clinic in Cairo (at Cairo) and one in Alexandria (180 km away): a
    search for Alexandria around Cairo within 10 km found them at 0.0 km (the Cairo clinic's
    distance), on every path of the nearby search."""
    specialty()
    both = doctor(specialties=(specialty(),))  # its clinic: in Cairo, at Cairo
    clinic_at(both, *ALEX, city="Alexandria")
    far = round(geo.haversine_km(*CAIRO, *ALEX), 3)
    assert far > 150
    near = f"lat={CAIRO[0]}&lng={CAIRO[1]}"
    # clinics; entries by specialty (raw SQL without other filters); entries through the ORM
    for extra in ("", "&specialty=cardiology", "&specialty=cardiology&fee_min=0"):
        for sort in ("", "&sort=rating"):
            got = items(
                api.get(f"/api/v1/doctors?city=Alexandria&{near}&radius_km=10{extra}{sort}")
            )
            assert got == [], (extra, sort)
            for city in ("Alexandria", "الإسكندرية"):  # either name of the city
                [found] = items(
                    api.get(f"/api/v1/doctors?city={city}&{near}&radius_km=300{extra}{sort}")
                )
                assert (found["id"], found["distance_km"]) == (str(both.id), far), (extra, city)
            [found] = items(api.get(f"/api/v1/doctors?city=Cairo&{near}&radius_km=300{extra}"))
            assert found["distance_km"] == 0.0
    # without a location: any clinic of the doctor's in the city
    assert ids(api.get("/api/v1/doctors?city=Alexandria")) == [str(both.id)]


def brute_force(
    center: tuple[float, float], radius_km: float, city: str, code: str
) -> list[tuple[str, float]]:
    """The listed doctors (of the specialty) with a clinic in ``city`` within the radius, at
    their nearest such clinic, by (distance, id)."""
    clinics = Clinic.objects.filter(
        doctor__verification=Verification.VERIFIED,
        doctor__user__is_active=True,
        doctor__user__role=Role.DOCTOR,
    )
    if code:
        clinics = clinics.filter(doctor__specialties__code=code)
    key = f",{name_key(city)},"
    nearest: dict[str, float] = {}
    for doctor_id, lat, lng, name, names in clinics.values_list(
        "doctor_id", "latitude", "longitude", "city", "city_names"
    ):
        if name.casefold() != city.casefold() and key not in names:
            continue
        d = geo.haversine_km(center[0], center[1], lat, lng)
        if d <= radius_km and d < nearest.get(str(doctor_id), float("inf")):
            nearest[str(doctor_id)] = d
    return sorted(nearest.items(), key=lambda item: (item[1], item[0]))


def test_a_nearby_search_by_city_matches_brute_force() -> None:
    rng = random.Random(511)
    cardio = specialty()
    cities = ["Cairo", "Giza", "القاهرة"]
    for i in range(40):
        d = doctor(
            lat=None,
            lng=None,
            verified=i % 9 != 0,
            specialties=(cardio,) if i % 2 else (),
        )
        for _ in range(rng.randint(1, 3)):
            lat, lng = CAIRO[0] + rng.gauss(0, 0.1), CAIRO[1] + rng.gauss(0, 0.1)
            clinic_at(d, lat, lng, city=rng.choice(cities))
    for _ in range(15):
        center = (CAIRO[0] + rng.gauss(0, 0.05), CAIRO[1] + rng.gauss(0, 0.05))
        radius = rng.uniform(1, 25)
        for city in ("Cairo", "Giza", "giza", "القاهرة"):
            for code, other in (("", {}), ("cardiology", {}), ("cardiology", {"fee_min": 0})):
                f = selectors.SearchFilters(
                    city=city,
                    specialty=code,
                    latitude=center[0],
                    longitude=center[1],
                    radius_km=radius,
                    **other,
                )
                got = selectors._nearby(f)
                expected = brute_force(center, radius, city, code)
                assert [i for i, _ in got] == [i for i, _ in expected], (city, code, other)
                assert [d for _, d in got] == pytest.approx([d for _, d in expected])


# --- 2. erased doctors are neither verified nor queued ---------------------------------------


@pytest.mark.parametrize(
    ("decision", "reason"), [("verified", ""), ("rejected", "Licence number 4471 expired")]
)
def test_an_erased_doctor_is_neither_decided_nor_queued(
    api: Client, decision: str, reason: str
) -> None:
    admin = make_user(role=Role.ADMIN)
    gone = doctor(verified=False)
    waiting = doctor(verified=False)
    account_delete(user=gone.user)
    Notification.objects.all().delete()
    with pytest.raises(AccountErased):
        services.doctor_verify(actor=admin, doctor_id=gone.id, decision=decision, reason=reason)
    gone.refresh_from_db()
    assert (gone.verification, gone.verification_reason, gone.verified_at) == (
        Verification.PENDING,
        "",
        None,
    )
    assert not Notification.objects.filter(user=gone.user).exists()
    queued = selectors.verification_queue(viewer=admin)
    assert list(queued) == [waiting]
    headers = bearer(login(api, admin.email)["access"])
    r = api.get("/api/v1/admin/verifications", headers=headers)
    assert [i["id"] for i in items(r)] == [str(waiting.id)]
    r = api.post(
        f"/api/v1/admin/verifications/{gone.id}",
        {"decision": decision, "reason": reason},
        content_type="application/json",
        headers=headers,
    )
    assert r.status_code == 409, r.content
    assert r.json()["error"]["code"] == "auth.account_erased"


# --- 3. two rebuilds of one doctor's index -------------------------------------------------


def entries_of(profile: DoctorProfile) -> set[tuple[Any, int]]:
    return set(DirectoryEntry.objects.filter(doctor=profile).values_list("clinic_id", "specialty"))


def wanted(profile: DoctorProfile) -> set[tuple[Any, int]]:
    codes = list(profile.specialties.values_list("pk", flat=True))
    return {(c, s) for c in profile.clinics.values_list("pk", flat=True) for s in codes}


@pytest.mark.django_db(transaction=True)
def test_a_profile_edit_and_a_clinic_edit_of_one_doctor_do_not_deadlock(monkeypatch):
    """The profile edit holds the profile and has rebuilt the index (deleting the clinic's
    entry, inserting new ones whose key checks need the clinic at commit); the clinic edit
    locked the clinic, then its rebuild waited for the deleted entry: each waited on the
    other (PostgreSQL ended one: a 409 or 500 to a legitimate save). Now the clinic edit
    takes the profile first, and waits."""
    cardio, derma = specialty(), specialty("dermatology", "Dermatology", "الجلدية")
    d = doctor(specialties=(cardio,))
    clinic = d.clinics.get()
    outcome = race(
        monkeypatch,
        lambda: services.doctor_profile_update(user=d.user, changes={"specialties": [derma.code]}),
        lambda: services.clinic_update(user=d.user, clinic_id=clinic.id, changes={"name": "New"}),
        at=(index, "rebuild"),
    )
    assert not isinstance(outcome.first, BaseException), outcome.first
    assert not isinstance(outcome.second, BaseException), outcome.second
    assert outcome.second_waited  # for the profile
    clinic.refresh_from_db()
    assert clinic.name == "New"
    assert entries_of(d) == wanted(d) == {(clinic.id, derma.pk)}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("by", ["admin page", "specialties.set"])
def test_two_writers_of_one_doctors_specialties_both_succeed(monkeypatch, by):
    """The doctor adds a specialty (and has rebuilt the index, not committed); the admin
    site sets another: its rebuild waited for the entry the doctor's deleted, then inserted
    the entries the doctor's had committed meanwhile (directory_entry_unique: a 500)."""
    cardio, derma = specialty(), specialty("dermatology", "Dermatology", "الجلدية")
    peds = specialty("pediatrics", "Pediatrics", "طب الأطفال")
    d = doctor(specialties=(cardio,))
    if by == "admin page":
        client = staff_client(superuser())
        url = f"/admin/doctors/doctorprofile/{d.pk}/change/"
        data = change_form(client, url, specialties=[str(cardio.pk), str(peds.pk)])

        def second() -> Any:
            return client.post(url, data)
    else:

        def second() -> Any:
            with transaction.atomic():
                DoctorProfile.objects.get(pk=d.pk).specialties.set([cardio, peds])

    outcome = race(
        monkeypatch,
        lambda: services.doctor_profile_update(
            user=d.user, changes={"specialties": [cardio.code, derma.code]}
        ),
        second,
        at=(index, "rebuild"),
    )
    assert not isinstance(outcome.first, BaseException), outcome.first
    assert not isinstance(outcome.second, BaseException), outcome.second
    if by == "admin page":
        assert outcome.second.status_code == 302, outcome.second.status_code
    assert outcome.second_waited
    assert peds.pk in set(d.specialties.values_list("pk", flat=True))
    assert entries_of(d) == wanted(d)


def test_a_rebuild_keeps_the_entries_still_wanted_and_drops_the_others():
    cardio, derma = specialty(), specialty("dermatology", "Dermatology", "الجلدية")
    d = doctor(specialties=(cardio, derma))
    other = doctor(specialties=(cardio,))
    kept = DirectoryEntry.objects.get(doctor=d, specialty=cardio).pk
    d.specialties.remove(derma)
    assert entries_of(d) == wanted(d)
    assert DirectoryEntry.objects.get(doctor=d, specialty=cardio).pk == kept  # written over
    DirectoryEntry.objects.filter(doctor=other).update(listed=False, latitude=0.0)
    assert index.rebuild() == 2  # all: every entry back as its clinic and doctor say
    assert DirectoryEntry.objects.filter(listed=True, latitude=CAIRO[0]).count() == 2


# --- 4. min_rating follows the rating shown ------------------------------------------------


def test_min_rating_keeps_the_doctors_shown_at_the_threshold(api: Client) -> None:
    shown_44 = doctor(rating_sum=1099, rating_count=250)  # 4.396
    half_up = doctor(rating_sum=879, rating_count=200)  # 4.395 exactly: shown 4.4
    shown_435 = doctor(rating_sum=1087, rating_count=250)  # 4.348: shown 4.35
    shown_439 = doctor(rating_sum=43949, rating_count=10000)  # 4.3949: shown 4.39
    doctor(rating_sum=0, rating_count=0)
    assert shown_44.rating == half_up.rating == 4.4
    assert (shown_435.rating, shown_439.rating) == (4.35, 4.39)
    shown = {i["id"]: i["rating"] for i in items(api.get("/api/v1/doctors?limit=50"))}
    assert shown[str(shown_44.id)] == shown[str(half_up.id)] == 4.4
    got = ids(api.get("/api/v1/doctors?min_rating=4.4"))
    assert sorted(got) == sorted([str(shown_44.id), str(half_up.id)])
    got = ids(api.get("/api/v1/doctors?min_rating=4.35"))
    everyone = [shown_44, half_up, shown_435, shown_439]
    assert sorted(got) == sorted(str(d.id) for d in everyone)
    got = ids(api.get("/api/v1/doctors?min_rating=4.355"))  # shown in hundredths: 4.36 and up
    assert sorted(got) == sorted([str(shown_44.id), str(half_up.id), str(shown_439.id)])


# --- 5. Arabic names ---------------------------------------------------------------------


def test_presentation_forms_fold_as_the_letters_they_show(api: Client) -> None:
    assert normalise("ﻣﻜﺔ") == normalise("مكة") == "مكه"
    assert normalise("ﺃﺣﻤﺪ") == normalise("أحمد")
    d = doctor(lat=None, lng=None)
    clinic_at(d, 21.4225, 39.8262, city="ﻣﻜﺔ")  # typed in presentation forms
    assert ids(api.get("/api/v1/doctors", {"city": "مكة"})) == [str(d.id)]
    named = doctor(first_name="ﺃﺣﻤﺪ", last_name="Salem")
    assert ids(api.get("/api/v1/doctors", {"name": "احمد"})) == [str(named.id)]


def test_a_name_is_found_written_with_or_without_its_space(api: Client) -> None:
    spaced = doctor(first_name="عبد الله", last_name="حسن")
    joined = doctor(first_name="عبدالله", last_name="سالم")
    latin = doctor(first_name="Abdel-Rahman", last_name="Fahmy")
    assert sorted(ids(api.get("/api/v1/doctors", {"name": "عبدالله"}))) == sorted(
        [str(spaced.id), str(joined.id)]
    )
    assert sorted(ids(api.get("/api/v1/doctors", {"name": "عبد الله"}))) == sorted(
        [str(spaced.id), str(joined.id)]
    )
    assert ids(api.get("/api/v1/doctors", {"name": "عبدالله حسن"})) == [str(spaced.id)]
    assert ids(api.get("/api/v1/doctors", {"name": "abdelrahman"})) == [str(latin.id)]
    assert ids(api.get("/api/v1/doctors", {"name": "Abdel Rahman"})) == [str(latin.id)]


def test_the_backfill_folds_the_stored_names_again(monkeypatch):
    fill = importlib.import_module("doctors.migrations.0008_refold_names")
    monkeypatch.setattr(fill, "BATCH", 2)  # several batches
    profiles = [doctor(first_name="عبد الله", last_name=f"ﺣﺴﻦ{n}") for n in range(5)]
    clinic = clinic_at(profiles[0], 21.4225, 39.8262, city="ﻣﻜﺔ")
    DoctorProfile.objects.update(search_name="stale")
    Clinic.objects.filter(pk=clinic.pk).update(city_names=",مكة,")  # as folded before
    Clinic.objects.exclude(pk=clinic.pk).update(city_names=",kept,")  # ASCII: left alone
    fill.fill_names(apps, None)
    fill.fill_cities(apps, None)
    assert {
        p.search_name for p in DoctorProfile.objects.filter(pk__in=[p.pk for p in profiles])
    } == {f"عبد له حسن{n} عبداللهحسن{n}" for n in range(5)}
    clinic.refresh_from_db()
    assert clinic.city_names == city_key("ﻣﻜﺔ") == city_key("مكة")
    assert set(Clinic.objects.exclude(pk=clinic.pk).values_list("city_names", flat=True)) == {
        ",kept,"
    }


# --- 6. the unknown specialties of a profile edit, in the reader's language ----------------


def test_unknown_specialties_of_a_profile_edit_are_told_in_arabic(api: Client) -> None:
    specialty()
    d = doctor()
    headers = bearer(login(api, d.user.email)["access"])
    for language, expected in (
        ("en", "These specialties do not exist: nope, zzz."),
        ("ar", "هذه التخصصات غير موجودة: nope, zzz."),
    ):
        r = api.patch(
            "/api/v1/doctor/profile",
            {"specialties": ["cardiology", "zzz", "nope"]},
            content_type="application/json",
            headers={**headers, "Accept-Language": language},
        )
        assert r.status_code == 422, r.content
        error = r.json()["error"]
        assert error["code"] == "directory.unknown_specialty"
        assert error["fields"] == {"specialties": expected}
