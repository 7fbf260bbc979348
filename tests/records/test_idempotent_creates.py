"""Idempotency-Key on the record endpoints that create things (DESIGN: Contracts): the same
key and body give one row and the first answer again; the same key with another body is 422
``request.idempotency_mismatch``."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tasks_db.models import DBTaskResult

from records.models import AccessGrant, BreakGlassAccess, MedicalRecord
from tests.doctors.factories import doctor
from tests.factories import make_user
from tests.records.conftest import PDF, PNG, headers_for, keys
from tests.replay import MISMATCH, replayed_once

pytestmark = pytest.mark.django_db


def _upload(api: Any, headers: dict[str, str], key: str, content: bytes = PDF, **fields: str):
    data: dict[str, Any] = {"category": "lab_result", "title": "Blood count", **fields}
    data["file"] = SimpleUploadedFile("result.pdf", content, content_type="application/pdf")
    return api.post("/api/v1/records", data, headers={**headers, "Idempotency-Key": key})


def test_a_retried_upload_makes_one_record_and_one_scan(api, patient_headers):
    first = _upload(api, patient_headers, "up-1")
    assert first.status_code == 201, first.json()
    again = _upload(api, patient_headers, "up-1")
    assert (again.status_code, again.json()) == (201, first.json())
    assert MedicalRecord.objects.count() == 1
    assert DBTaskResult.objects.filter(task_path="records.tasks.scan_record").count() == 1
    # another file, or other fields, under the same key
    for r in (
        _upload(api, patient_headers, "up-1", content=PNG),
        _upload(api, patient_headers, "up-1", title="Other"),
    ):
        assert r.status_code == 422 and r.json()["error"]["code"] == MISMATCH, r.json()
    assert MedicalRecord.objects.count() == 1
    # a new key is a new upload
    assert _upload(api, patient_headers, "up-2").status_code == 201
    assert MedicalRecord.objects.count() == 2


def test_a_retried_direct_upload_start_makes_one_record_and_one_form(api, s3, patient_headers):
    body = {"category": "imaging", "title": "MRI", "file_name": "mri.pdf"}
    other = {**body, "title": "CT"}
    replayed_once(api, "/api/v1/records/uploads", body, other, patient_headers, "direct-1")
    assert MedicalRecord.objects.count() == 1 and keys(s3) == []


def test_a_retried_break_glass_opens_one_access(api, patient):
    headers = headers_for(api, make_user(role="admin"))
    body = {"patient_id": str(patient.id), "reason": "Patient unconscious in the ER"}
    other = {**body, "reason": "Another reason, long"}
    replayed_once(api, "/api/v1/records/break-glass", body, other, headers, "bg-1")
    assert BreakGlassAccess.objects.count() == 1


def test_a_retried_grant_gives_the_first_answer_and_grants_are_a_list_envelope(
    api, patient_headers
):
    record_id = _upload(api, patient_headers, "up-g").json()["id"]
    first_doctor, second_doctor = doctor(), doctor()
    path = f"/api/v1/records/{record_id}/grants"
    body = {"doctor_id": str(first_doctor.user_id)}
    other = {"doctor_id": str(second_doctor.user_id)}
    first = replayed_once(api, path, body, other, patient_headers, "grant-1")
    assert AccessGrant.objects.count() == 1
    listed = api.get(path, headers=patient_headers).json()
    assert listed == {"items": [first], "next": None}


def test_an_upload_whose_key_cannot_be_stored_leaves_no_file_behind(
    api, patient_headers, monkeypatch
):
    from django.core.files.storage import storages
    from django.db import OperationalError

    from core import idempotency

    written: list[str] = []
    save = storages["default"].save

    def remember(name: str, *args: Any, **kwargs: Any) -> str:
        written.append(save(name, *args, **kwargs))
        return written[-1]

    def refused(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("the database failed")  # after the file went to storage

    monkeypatch.setattr(storages["default"], "save", remember)
    monkeypatch.setattr(idempotency.db, "update", refused)
    r = _upload(api, patient_headers, "up-lost")
    assert r.status_code >= 500
    assert MedicalRecord.objects.count() == 0
    assert written and not any(storages["default"].exists(name) for name in written)
