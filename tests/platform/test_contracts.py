"""DESIGN's contracts on endpoints that missed them: Idempotency-Key on creating POSTs (the
same key and body give one row and the first answer; another body is 422
``request.idempotency_mismatch``), and lists as ``{"items": [...], "next": cursor | null}``."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from accounts.models import Invitation, Role, User
from bookings.models import Appointment, Review
from doctors.models import Clinic
from tests.doctors.factories import doctor, specialty
from tests.factories import bearer, login, make_user
from tests.replay import replayed_once

pytestmark = pytest.mark.django_db


def _headers(api: Any, user: User) -> dict[str, str]:
    return bearer(login(api, user.email)["access"])


def _stored_body(key: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT body FROM core_idempotencyrecord WHERE key = %s", [key])
        (raw,) = cursor.fetchone()
    return str(raw)


def test_a_retried_doctor_creation_gives_the_same_temporary_password_once(api):
    headers = _headers(api, make_user(role=Role.ADMIN))
    body = {"email": "dr.retry@example.com", "first_name": "Rana", "last_name": "Saad"}
    other = {**body, "first_name": "Rania"}
    answer = replayed_once(api, "/api/v1/admin/doctors", body, other, headers, "doc-1")
    assert User.objects.filter(email="dr.retry@example.com").count() == 1
    # the one-time password is kept for the retry, encrypted (never in clear in the table)
    raw = _stored_body("doc-1")
    assert raw.startswith("enc1:") and answer["temporary_password"] not in raw
    login(api, "dr.retry@example.com", answer["temporary_password"])
    # without a key, a second creation is still the documented 409
    r = api.post("/api/v1/admin/doctors", body, content_type="application/json", headers=headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "auth.email_taken"


def test_a_retried_invitation_gives_the_same_code_once(api):
    headers = _headers(api, make_user(role=Role.ADMIN))
    body = {"email": "invited@example.com", "ttl_days": 3}
    other = {**body, "ttl_days": 4}
    answer = replayed_once(api, "/api/v1/admin/invitations", body, other, headers, "inv-1")
    assert Invitation.objects.count() == 1
    raw = _stored_body("inv-1")
    assert raw.startswith("enc1:") and answer["code"] not in raw


def test_a_retried_clinic_creation_adds_one_clinic(api):
    user = make_user(role=Role.DOCTOR)
    body: dict[str, Any] = {"name": "Heart Care", "address": "12 Nile St", "city": "Cairo"}
    body |= {"latitude": 30.05, "longitude": 31.24}
    other = {**body, "name": "Heart Care 2"}
    replayed_once(api, "/api/v1/doctor/clinics", body, other, _headers(api, user), "clinic-1")
    assert Clinic.objects.filter(doctor__user=user).count() == 1


def test_a_retried_review_is_one_review(api):
    patient = make_user()
    start = datetime.now(UTC) - timedelta(days=1)
    appointment = Appointment.objects.create(
        doctor=doctor(),
        patient=patient,
        mode="video",
        status="completed",
        start=start,
        end=start + timedelta(minutes=30),
    )
    path = f"/api/v1/appointments/{appointment.id}/review"
    body = {"rating": 4, "text": "Kind"}
    replayed_once(api, path, body, {**body, "rating": 5}, _headers(api, patient), "review-1")
    assert Review.objects.count() == 1


# --- lists -----------------------------------------------------------------------------------
def test_specialties_are_a_list_envelope(api):
    specialty()
    body = api.get("/api/v1/specialties").json()
    assert body == {"items": [{"code": "cardiology", "name": "Cardiology"}], "next": None}


def test_preferences_and_presence_are_list_envelopes(api):
    headers = _headers(api, make_user())
    preferences = api.get("/api/v1/notifications/preferences", headers=headers).json()
    assert preferences["next"] is None and preferences["items"]
    assert api.get("/api/v1/presence", headers=headers).json() == {"items": [], "next": None}


def test_slots_and_rules_carry_next(api):
    profile = doctor()
    day = date.today() + timedelta(days=3)
    slots = api.get(f"/api/v1/doctors/{profile.id}/slots?from={day}&to={day}").json()
    assert slots["next"] is None and slots["time_zone"] and "items" in slots
    rules = api.get("/api/v1/availability/rules", headers=_headers(api, profile.user)).json()
    assert rules == {"items": [], "next": None}


def test_the_schema_makes_next_required_on_these_lists(api):
    schemas = api.get("/api/v1/openapi.json").json()["components"]["schemas"]
    for name in ("SpecialtyList", "GrantPage", "PreferenceList", "PresenceList", "SlotsOut"):
        assert {"items", "next"} <= set(schemas[name]["required"]), name
    assert "next" in schemas["RulePage"]["required"]
