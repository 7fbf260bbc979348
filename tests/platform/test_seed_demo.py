import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from accounts.models import User
from doctors import demo, geo
from doctors.models import Clinic, DoctorProfile, Specialty, Verification
from telemed.management.commands.seed_demo import DEMO_ACCOUNTS
from tests.factories import login

pytestmark = pytest.mark.django_db

ARABIC = re.compile("[\u0621-\u064a]")
CAIRO = (30.0444, 31.2357)


def generated() -> list[DoctorProfile]:
    return list(
        DoctorProfile.objects.filter(user__email__endswith=f"@{demo.DOMAIN}")
        .select_related("user")
        .prefetch_related("clinics", "specialties")
    )


def test_demo_accounts_can_log_in_and_seeding_twice_is_harmless(api, capsys):
    call_command("seed_demo")
    call_command("seed_demo")
    out = capsys.readouterr().out
    for spec in DEMO_ACCOUNTS:
        assert spec["email"] in out
        tokens = login(api, spec["email"], spec["password"])
        me = api.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens['access']}"}).json()
        assert me["role"] == spec["role"]


def test_seed_creates_verified_bilingual_doctors_with_indexed_clinics(capsys):
    call_command("seed_demo", "--doctors", "30")
    assert "30 doctors" in capsys.readouterr().out

    doctors = generated()
    assert len(doctors) == 30
    for profile in doctors:
        assert profile.verification == Verification.VERIFIED and profile.verified_at
        assert profile.user.is_active and not profile.user.has_usable_password()
        assert profile.user.first_name and profile.user.last_name
        assert profile.bio_en and ARABIC.search(profile.bio_ar)
        assert 1 <= len(profile.specialties.all()) <= 3
        assert profile.language_codes and profile.modes and profile.fee_minor > 0
        assert profile.currency in {"EGP", "SAR", "AED", "USD"}
        if profile.rating_count:
            assert 1 <= profile.rating_sum / profile.rating_count <= 5
        else:
            assert profile.rating_sum == 0
        clinics = profile.clinics.all()
        assert 1 <= len(clinics) <= 2
        for clinic in clinics:
            cells = geo.cells_for(clinic.latitude, clinic.longitude)
            assert {res: getattr(clinic, geo.column_for(res)) for res in cells} == cells
            assert len(clinic.country) == 2 and clinic.time_zone and clinic.city
    # Realistic mixes: several countries and currencies, Arabic- and Latin-script names.
    assert len({c.country for p in doctors for c in p.clinics.all()}) >= 4
    assert any(ARABIC.search(p.user.first_name) for p in doctors)
    assert any(p.user.first_name.isascii() for p in doctors)
    assert any(p.rating_count for p in doctors)

    names = dict(Specialty.objects.values_list("code", "name_ar"))
    assert len(names) >= 20 and all(ARABIC.search(n) for n in names.values())
    assert names["cardiology"] == "أمراض القلب"
    assert names["dermatology"] == "الأمراض الجلدية"
    assert names["pediatrics"] == "طب الأطفال"


def test_the_public_search_near_cairo_finds_generated_doctors(api):
    call_command("seed_demo", "--doctors", "30")
    ids = {str(p.id) for p in generated()}

    r = api.get(f"/api/v1/doctors?lat={CAIRO[0]}&lng={CAIRO[1]}&radius_km=25&limit=50")
    assert r.status_code == 200
    found = [item for item in r.json()["items"] if item["id"] in ids]
    assert found
    assert all(item["distance_km"] <= 25 for item in found)

    specialty = found[0]["specialties"][0]["code"]
    r = api.get(
        f"/api/v1/doctors?lat={CAIRO[0]}&lng={CAIRO[1]}&radius_km=25&specialty={specialty}",
        headers={"Accept-Language": "ar"},
    )
    items = r.json()["items"]
    assert any(item["id"] == found[0]["id"] for item in items)
    assert all(ARABIC.search(s["name"]) for item in items for s in item["specialties"])


def test_seeding_again_keeps_the_doctors_and_a_larger_n_adds_the_difference():
    call_command("seed_demo", "--doctors", "30")
    before = {p.id: (p.user.email, p.bio_en) for p in generated()}
    clinics = Clinic.objects.count()

    call_command("seed_demo", "--doctors", "30")
    assert {p.id: (p.user.email, p.bio_en) for p in generated()} == before
    assert Clinic.objects.count() == clinics

    call_command("seed_demo", "--doctors", "10")  # a smaller N removes nothing
    assert len(generated()) == 30

    call_command("seed_demo", "--doctors", "35")
    after = {p.id: (p.user.email, p.bio_en) for p in generated()}
    assert len(after) == 35 and before.items() <= after.items()


def test_a_doctor_depends_only_on_the_seed_and_its_index():
    now = timezone.now()
    a = demo.generate_doctor(1234, seed=7, now=now)
    b = demo.generate_doctor(1234, seed=7, now=now)
    c = demo.generate_doctor(1234, seed=8, now=now)
    assert (a.user.id, a.user.email, a.profile.bio_ar, a.specialties) == (
        b.user.id,
        b.user.email,
        b.profile.bio_ar,
        b.specialties,
    )
    assert [(k.latitude, k.longitude) for k in a.clinics] == [
        (k.latitude, k.longitude) for k in b.clinics
    ]
    assert a.user.id != c.user.id and a.user.email == c.user.email


def test_the_demo_doctor_has_a_verified_profile_with_a_clinic_in_cairo(api):
    call_command("seed_demo", "--doctors", "0")
    call_command("seed_demo", "--doctors", "0")
    user = User.objects.get(email="doctor@demo.telemed.local")
    profile = DoctorProfile.objects.get(user=user)
    assert profile.verification == Verification.VERIFIED
    assert profile.specialties.filter(code="cardiology").exists()
    [clinic] = profile.clinics.all()
    assert clinic.city == "Cairo" and clinic.country == "EG"
    assert geo.haversine_km(clinic.latitude, clinic.longitude, *CAIRO) < 5

    r = api.get(f"/api/v1/doctors?lat={CAIRO[0]}&lng={CAIRO[1]}&radius_km=5&specialty=cardiology")
    assert str(profile.id) in [item["id"] for item in r.json()["items"]]


def test_seed_demo_refuses_to_run_in_production(settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="production"):
        call_command("seed_demo")
    assert not User.objects.exists()


def test_demo_doctor_has_hours_and_can_be_booked(api):
    from datetime import date, timedelta

    from doctors.models import DoctorProfile

    call_command("seed_demo", "--doctors", "3")
    profile = DoctorProfile.objects.get(user__email="doctor@demo.telemed.local")
    day = date.today() + timedelta(days=3)
    slots = api.get(f"/api/v1/doctors/{profile.id}/slots?from={day}&to={day}").json()["items"]
    assert len(slots) >= 10
    tokens = login(api, "patient@demo.telemed.local", "demo-patient-2026")
    r = api.post(
        "/api/v1/appointments",
        {"doctor_id": str(profile.id), "start": slots[0]["start"], "mode": slots[0]["mode"]},
        content_type="application/json",
        headers={"Authorization": f"Bearer {tokens['access']}"},
    )
    assert r.status_code == 201, r.json()
    # the generated doctors' hours are in the modes their profiles offer, and only those
    from bookings.models import AvailabilityRule

    rules = AvailabilityRule.objects.select_related("doctor")
    assert rules.exists()
    assert all(rule.mode in rule.doctor.modes for rule in rules)
