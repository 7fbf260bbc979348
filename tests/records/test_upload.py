"""Uploads through the API: type by content, size limits, sanitised names, encryption."""

from __future__ import annotations

import hashlib

import pytest
from django.db import connection
from django_tasks_db.models import DBTaskResult

from records.models import MedicalRecord
from records.services import sanitize_file_name
from tests.doctors.factories import doctor
from tests.factories import bearer, login, make_user
from tests.records.conftest import EXE, PDF, PNG, headers_for, in_care_with, upload

pytestmark = pytest.mark.django_db


def test_patient_uploads_a_pdf_which_waits_for_its_scan(api, patient, patient_headers):
    r = upload(api, patient_headers, PDF, "../../etc/Blood count (March).pdf", notes="fasting")
    assert r.status_code == 201, r.json()
    body = r.json()
    assert body["status"] == "pending"
    assert body["content_type"] == "application/pdf"
    assert body["sha256"] == hashlib.sha256(PDF).hexdigest()
    assert body["size"] == len(PDF)
    assert body["file_name"] == "Blood_count_March.pdf"
    assert body["patient_id"] == str(patient.id)
    record = MedicalRecord.objects.get(id=body["id"])
    assert record.storage_key == f"quarantine/{record.id}"
    scans = DBTaskResult.objects.filter(task_path="records.tasks.scan_record")
    assert [t.args_kwargs["args"] for t in scans] == [[str(record.id)]]


def test_title_notes_and_file_name_are_encrypted_at_rest(api, patient_headers):
    record_id = upload(api, patient_headers, notes="HIV test", title="Secret title").json()["id"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT title, notes, file_name FROM records_medicalrecord WHERE id = %s", [record_id]
        )
        title, notes, file_name = cursor.fetchone()
    assert "Secret" not in title and "HIV" not in notes and "result" not in file_name
    assert MedicalRecord.objects.get(id=record_id).notes == "HIV test"


def test_renamed_executable_is_refused_with_415(api, patient_headers):
    r = upload(api, patient_headers, EXE, "scan.pdf")
    assert r.status_code == 415
    assert r.json()["error"]["code"] == "records.file_type_not_allowed"
    assert MedicalRecord.objects.count() == 0


def test_allowed_types_are_recognised_by_content_not_name(api, patient_headers):
    dicom = b"\x00" * 128 + b"DICM" + b"\x02\x00" * 20
    cases = [(PNG, "a.txt", "image/png"), (dicom, "x.bin", "application/dicom")]
    cases.append(("نتيجة التحليل: طبيعي\n".encode(), "notes", "text/plain"))
    for content, name, expected in cases:
        r = upload(api, patient_headers, content, name)
        assert r.status_code == 201, r.json()
        assert r.json()["content_type"] == expected


def test_empty_file_missing_file_and_bad_fields_are_422(api, patient_headers):
    r = upload(api, patient_headers, b"", "empty.pdf")
    assert r.status_code == 422 and r.json()["error"]["code"] == "records.empty_file"
    r = upload(api, patient_headers, None)
    assert r.status_code == 422 and r.json()["error"]["code"] == "records.file_missing"
    r = upload(api, patient_headers, category="x-ray")
    assert r.status_code == 422 and "category" in r.json()["error"]["fields"]
    r = upload(api, patient_headers, title="")
    assert r.status_code == 422 and "title" in r.json()["error"]["fields"]
    r = upload(api, patient_headers, surprise="1")
    assert r.status_code == 422 and "surprise" in r.json()["error"]["fields"]
    r = api.post(
        "/api/v1/records", {"title": "x"}, content_type="application/json", headers=patient_headers
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "records.invalid_upload"
    assert MedicalRecord.objects.count() == 0


def test_text_that_cannot_be_stored_is_422_in_the_request_language(api, patient_headers):
    """The upload reads its form itself: the API parser's check of every text applies too
    (a form's bytes are decoded as UTF-8, replacing what does not decode: no lone surrogate
    comes from one)."""
    arabic = {**patient_headers, "Accept-Language": "ar"}
    for field in ("title", "notes"):
        r = upload(api, arabic, PDF, **{field: "a\x00b"})
        assert r.status_code == 422, r.json()
        error = r.json()["error"]
        assert error["code"] == "request.invalid" and set(error["fields"]) == {field}
        assert any("\u0600" <= c <= "\u06ff" for c in error["fields"][field])
    assert MedicalRecord.objects.count() == 0
    # A file's name is cleaned, not refused: control characters go.
    r = upload(api, patient_headers, PDF, "re\x00sult.pdf")
    assert r.status_code == 201 and r.json()["file_name"] == "result.pdf"


def test_declared_21_mb_upload_is_413(api, patient_headers):
    r = api.post(
        "/api/v1/records",
        data=b"",
        content_type="multipart/form-data; boundary=x",
        headers={**patient_headers, "Content-Length": str(21 * 1024 * 1024)},
    )
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "request.too_large"


def test_file_over_the_limit_is_cut_off_with_413(api, patient_headers, settings):
    settings.RECORDS_MAX_UPLOAD_BYTES = 1000
    r = upload(api, patient_headers, PDF + b"0" * 1000)
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "records.file_too_large"
    assert MedicalRecord.objects.count() == 0


def test_doctor_uploads_only_for_patients_in_care(api, patient):
    profile = doctor()
    headers = headers_for(api, profile.user)
    r = upload(api, headers, patient_id=str(patient.id))
    assert r.status_code == 403 and r.json()["error"]["code"] == "records.not_in_care"
    r = upload(api, headers)  # no patient named
    assert r.status_code == 403
    in_care_with(profile, patient)
    r = upload(api, headers, patient_id=str(patient.id))
    assert r.status_code == 201
    assert r.json()["patient_id"] == str(patient.id)
    assert r.json()["uploaded_by_id"] == str(profile.user.id)


def test_patient_cannot_upload_for_someone_else_and_staff_cannot_upload(api, patient_headers):
    other = make_user()
    r = upload(api, patient_headers, patient_id=str(other.id))
    assert r.status_code == 403
    admin = make_user(role="admin")
    r = upload(api, bearer(login(api, admin.email)["access"]))
    assert r.status_code == 403 and r.json()["error"]["code"] == "auth.role_required"
    assert upload(api, {}).status_code == 401


def test_file_names_are_sanitised():
    assert sanitize_file_name("C:\\Users\\x\\report.pdf") == "report.pdf"
    assert sanitize_file_name("..") == "file"
    assert sanitize_file_name("a\x00b\r\n.pdf") == "ab.pdf"
    assert sanitize_file_name('x"; filename=evil.exe') == "x_filenameevil.exe"
    assert sanitize_file_name("تقرير طبي.pdf") == "تقرير_طبي.pdf"
    assert len(sanitize_file_name("a" * 500 + ".pdf")) == 120
