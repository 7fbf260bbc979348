"""A patient's list is of their own files only, whatever ``patient`` they pass, and its
audit event says so: it never shows in another patient's access log."""

from __future__ import annotations

import pytest

from audit.models import AuditEvent
from tests.factories import make_user
from tests.records.conftest import headers_for, upload

pytestmark = pytest.mark.django_db


def test_a_patient_listing_another_patients_files_gets_none_and_is_not_in_their_log(
    api, patient, patient_headers
):
    other = make_user()
    own = upload(api, patient_headers).json()["id"]
    r = api.get(f"/api/v1/records?patient={other.pk}", headers=patient_headers)
    assert r.status_code == 200 and r.json()["items"] == []
    r = api.get(f"/api/v1/records?patient={patient.pk}", headers=patient_headers)
    assert [i["id"] for i in r.json()["items"]] == [own]
    events = AuditEvent.objects.filter(action="records.listed").order_by("created_at", "id")
    assert [(e.target_type, e.target_id, e.data["patient_id"]) for e in events] == [
        ("patient", str(patient.pk), str(patient.pk))
    ] * 2
    log = api.get("/api/v1/me/export", headers=headers_for(api, other)).json()["access_log"]
    assert [e for e in log if e["action"] == "records.listed"] == []
