"""An appointment's reason (and the reasons in its history) is protected health information:
staff, who see every appointment, get none in lists and dashboards (null), and read it one
appointment at a time, each read audited (``appointment.viewed_by_staff``: ids, never the
reason). Its patient and its doctor see it as before, unaudited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.utils import timezone

from accounts.models import Role, User
from audit.models import AuditEvent
from bookings.models import Appointment, BookingPolicy, Status
from bookings.services import appointment_book, appointment_cancel
from doctors.models import DoctorProfile
from tests.bookings.conftest import next_slot
from tests.factories import bearer, login, make_user

pytestmark = pytest.mark.django_db

VIEWED = "appointment.viewed_by_staff"


def headers_of(api: Client, user: User) -> dict[str, str]:
    return bearer(login(api, user.email)["access"])


def viewing_helper() -> User:
    helper = make_user(role=Role.HELPER)
    group = Group.objects.create(name=f"viewers-{helper.pk}")
    group.permissions.add(
        Permission.objects.get(content_type__app_label="bookings", codename="view_appointment")
    )
    helper.groups.add(group)
    return helper


def two_appointments(profile: DoctorProfile, patient: User) -> tuple[Appointment, Appointment]:
    """A confirmed appointment with a reason, and one the doctor cancelled giving a reason
    (both upcoming)."""
    BookingPolicy.objects.filter(doctor=profile).update(requires_approval=False)
    kept = appointment_book(
        patient=patient,
        doctor_id=profile.id,
        start=next_slot(hour=10),
        mode="in_person",
        reason="chest pain",
    )
    off = appointment_book(
        patient=patient,
        doctor_id=profile.id,
        start=next_slot(hour=11),
        mode="in_person",
        reason="rash on the arm",
    )
    appointment_cancel(user=profile.user, appointment_id=off.id, reason="doctor unwell")
    assert kept.status == Status.CONFIRMED
    return kept, off


def reasons_listed(api: Client, headers: dict[str, str]) -> dict[str, str | None]:
    r = api.get("/api/v1/appointments", headers=headers)
    assert r.status_code == 200, r.json()
    return {item["id"]: item["reason"] for item in r.json()["items"]}


@pytest.mark.parametrize("staff", ["admin", "helper"])
def test_staff_lists_and_dashboards_carry_no_reason(api, doctor_with_hours, staff):
    kept, off = two_appointments(doctor_with_hours, make_user())
    user = make_user(role=Role.ADMIN) if staff == "admin" else viewing_helper()
    headers = headers_of(api, user)
    assert reasons_listed(api, headers) == {str(kept.id): None, str(off.id): None}
    r = api.get("/api/v1/dashboard", headers=headers)
    assert r.status_code == 200, r.json()
    assert [(i["id"], i["reason"]) for i in r.json()["next"]] == [(str(kept.id), None)]
    assert "chest pain" not in r.content.decode() and "unwell" not in r.content.decode()
    assert not AuditEvent.objects.filter(action=VIEWED).exists()


@pytest.mark.parametrize("staff", ["admin", "helper"])
def test_staff_read_the_reason_in_the_detail_audited(api, doctor_with_hours, staff):
    patient = make_user()
    _, off = two_appointments(doctor_with_hours, patient)
    user = make_user(role=Role.ADMIN) if staff == "admin" else viewing_helper()
    r = api.get(f"/api/v1/appointments/{off.id}", headers=headers_of(api, user))
    assert r.status_code == 200, r.json()
    assert r.json()["reason"] == "rash on the arm"
    assert [h["reason"] for h in r.json()["history"]] == ["", "doctor unwell"]
    event = AuditEvent.objects.get(action=VIEWED)
    assert (event.actor_id, event.actor_role) == (user.pk, user.role)
    assert (event.target_type, event.target_id) == ("appointment", str(off.id))
    assert event.data == {"patient_id": str(patient.pk)}  # ids only, never the reason


def test_staff_without_sight_of_the_appointment_leave_no_audit_event(api, doctor_with_hours):
    kept, _ = two_appointments(doctor_with_hours, make_user())
    headers = headers_of(api, make_user(role=Role.HELPER))  # no bookings.view_appointment
    assert api.get(f"/api/v1/appointments/{kept.id}", headers=headers).status_code == 404
    assert not AuditEvent.objects.filter(action=VIEWED).exists()


def test_the_patient_and_the_doctor_still_see_the_reasons_unaudited(api, doctor_with_hours):
    patient = make_user()
    kept, off = two_appointments(doctor_with_hours, patient)
    expected = {str(kept.id): "chest pain", str(off.id): "rash on the arm"}
    for user in (patient, doctor_with_hours.user):
        headers = headers_of(api, user)
        assert reasons_listed(api, headers) == expected
        dashboard = api.get("/api/v1/dashboard", headers=headers).json()
        assert [(i["id"], i["reason"]) for i in dashboard["next"]] == [(str(kept.id), "chest pain")]
        r = api.get(f"/api/v1/appointments/{off.id}", headers=headers)
        assert r.json()["reason"] == "rash on the arm"
        assert [h["reason"] for h in r.json()["history"]] == ["", "doctor unwell"]
    assert not AuditEvent.objects.filter(action=VIEWED).exists()


def test_the_schema_lets_the_reason_be_null(api):
    from openapi_spec_validator import validate

    spec = api.get("/api/v1/openapi.json").json()
    validate(spec)
    reason = spec["components"]["schemas"]["AppointmentOut"]["properties"]["reason"]
    assert {"type": "null"} in reason["anyOf"]


def test_the_doctors_day_on_the_dashboard_keeps_its_reasons(api, doctor_with_hours):
    now = timezone.now()
    a = Appointment.objects.create(
        doctor=doctor_with_hours,
        patient=make_user(),
        mode="video",
        status=Status.CONFIRMED,
        start=now,
        end=now + timedelta(minutes=30),
        reason="fever",
    )
    headers = headers_of(api, doctor_with_hours.user)
    dashboard = api.get("/api/v1/dashboard", headers=headers).json()
    assert [(i["id"], i["reason"]) for i in dashboard["today"]] == [(str(a.id), "fever")]
    assert [(i["id"], i["reason"]) for i in dashboard["next"]] == [(str(a.id), "fever")]
    admin = headers_of(api, make_user(role=Role.ADMIN))
    dashboard = api.get("/api/v1/dashboard", headers=admin).json()
    assert [(i["id"], i["reason"]) for i in dashboard["next"]] == [(str(a.id), None)]
