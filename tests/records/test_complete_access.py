"""``/complete`` gives an uploader no lasting right to a file: a finalised record is shown
only to an uploader who may still see it, the read audited as ``GET``'s; a pending upload
is finalised only while its uploader may still add to the patient's files."""

from __future__ import annotations

import httpx
import pytest

from audit.models import AuditEvent
from bookings.models import Status
from records.models import MedicalRecord
from tests.doctors.factories import doctor
from tests.records.conftest import PDF, headers_for, in_care_with, upload

pytestmark = pytest.mark.django_db


def _complete(api, headers, record_id):
    return api.post(f"/api/v1/records/{record_id}/complete", headers=headers)


def test_complete_shows_a_finalised_record_as_get_does_and_audits_it(api, patient, patient_headers):
    profile = doctor()
    headers = headers_for(api, profile.user)
    appointment = in_care_with(profile, patient)
    record_id = upload(api, headers, patient_id=str(patient.id), notes="private").json()["id"]
    r = _complete(api, headers, record_id)
    assert r.status_code == 200 and r.json()["status"] == "pending"
    viewed = AuditEvent.objects.filter(action="records.viewed", target_id=record_id)
    assert [e.actor_id for e in viewed] == [profile.user.id]
    appointment.status = Status.CANCELLED  # care ended
    appointment.save()
    assert api.get(f"/api/v1/records/{record_id}", headers=headers).status_code == 404
    r = _complete(api, headers, record_id)
    assert r.status_code == 404 and r.json()["error"]["code"] == "records.not_found"
    assert "private" not in r.text
    assert viewed.count() == 1  # nothing seen, nothing audited
    own = upload(api, patient_headers).json()["id"]
    assert _complete(api, patient_headers, own).status_code == 200  # the patient's own


def test_a_doctor_no_longer_in_care_cannot_finalise_a_direct_upload(api, s3, patient):
    profile = doctor()
    headers = headers_for(api, profile.user)
    appointment = in_care_with(profile, patient)
    body = {"category": "imaging", "title": "MRI", "file_name": "mri.pdf"}
    body["patient_id"] = str(patient.id)
    r = api.post("/api/v1/records/uploads", body, content_type="application/json", headers=headers)
    assert r.status_code == 201, r.json()
    started = r.json()
    form = started["upload"]
    httpx.post(form["url"], data=form["fields"], files={"file": ("x", PDF)})
    appointment.status = Status.CANCELLED
    appointment.save()
    record_id = started["record"]["id"]
    r = _complete(api, headers, record_id)
    assert r.status_code == 403 and r.json()["error"]["code"] == "records.not_in_care"
    assert MedicalRecord.objects.get(id=record_id).status == "awaiting_upload"  # left to purge
    in_care_with(profile, patient)  # in care again: finalised
    assert _complete(api, headers, record_id).json()["status"] == "pending"
