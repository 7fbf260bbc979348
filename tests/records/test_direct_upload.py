"""The direct path: a presigned POST to the quarantine prefix, the client uploads straight to
the real S3 endpoint, then finalises through the API; the same scan follows."""

from __future__ import annotations

import httpx
import pytest

from records.models import MedicalRecord
from records.tasks import scan_record
from tests import procs
from tests.records.conftest import EXE, PDF, keys, scanned

pytestmark = pytest.mark.django_db


def _start(api, headers, **extra):
    body = {"category": "imaging", "title": "MRI", "file_name": "mri scan.pdf", **extra}
    return api.post(
        "/api/v1/records/uploads", body, content_type="application/json", headers=headers
    )


def _send(form, content):
    return httpx.post(form["url"], data=form["fields"], files={"file": ("x", content)})


def test_direct_upload_end_to_end(api, clamd_on, s3, patient, patient_headers):
    r = _start(api, patient_headers)
    assert r.status_code == 201, r.json()
    started = r.json()
    record_id = started["record"]["id"]
    assert started["record"]["status"] == "awaiting_upload"
    assert started["upload"]["fields"]["key"] == f"telemed/quarantine/{record_id}"
    r = api.post(f"/api/v1/records/{record_id}/complete", headers=patient_headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "records.upload_not_received"
    sent = _send(started["upload"], PDF)
    assert sent.status_code in (200, 201, 204), sent.text
    # The form asks for encryption at rest (moto ignores the field; S3 enforces the policy).
    assert started["upload"]["fields"]["x-amz-server-side-encryption"] == "AES256"
    r = api.post(f"/api/v1/records/{record_id}/complete", headers=patient_headers)
    assert r.status_code == 200, r.json()
    assert (r.json()["status"], r.json()["content_type"], r.json()["size"]) == (
        "pending",
        "application/pdf",
        len(PDF),
    )
    assert (
        api.get(f"/api/v1/records/{record_id}/download", headers=patient_headers).status_code == 409
    )
    assert scanned(record_id) == "clean"
    clean_key = f"telemed/records/{patient.id}/{record_id}"
    assert keys(s3) == [clean_key]
    assert s3.head_object(Bucket=s3.bucket, Key=clean_key)["ServerSideEncryption"] == "AES256"
    url = api.get(f"/api/v1/records/{record_id}/download", headers=patient_headers).json()["url"]
    fetched = httpx.get(url)
    assert fetched.content == PDF
    assert 'filename="mri_scan.pdf"' in fetched.headers["content-disposition"]
    assert len(MedicalRecord.objects.get(id=record_id).sha256) == 64


def test_direct_upload_of_eicar_ends_infected_with_nothing_left(api, clamd_on, s3, patient_headers):
    started = _start(api, patient_headers).json()
    _send(started["upload"], procs.EICAR)
    record_id = started["record"]["id"]
    api.post(f"/api/v1/records/{record_id}/complete", headers=patient_headers)
    assert scanned(record_id) == "infected"
    assert keys(s3) == []


def test_direct_upload_of_a_renamed_executable_is_415_and_deleted(api, s3, patient_headers):
    started = _start(api, patient_headers, file_name="report.pdf").json()
    _send(started["upload"], EXE)
    record_id = started["record"]["id"]
    r = api.post(f"/api/v1/records/{record_id}/complete", headers=patient_headers)
    assert r.status_code == 415
    assert keys(s3) == []
    assert MedicalRecord.objects.get(id=record_id).status == "awaiting_upload"


def test_direct_upload_over_the_limit_is_refused(api, s3, patient_headers, settings):
    settings.RECORDS_MAX_UPLOAD_BYTES = 100
    started = _start(api, patient_headers).json()
    conditions = started["upload"]["fields"]["policy"]
    assert conditions  # the policy carries the content-length-range condition
    sent = _send(started["upload"], PDF + b"0" * 200)
    record_id = started["record"]["id"]
    if sent.status_code < 300:  # an endpoint that does not enforce the policy: we do
        r = api.post(f"/api/v1/records/{record_id}/complete", headers=patient_headers)
        assert r.status_code == 413
    assert keys(s3) == []


def test_only_the_uploader_finalises(api, s3, patient_headers):
    from tests.factories import make_user
    from tests.records.conftest import headers_for

    started = _start(api, patient_headers).json()
    _send(started["upload"], PDF)
    other = headers_for(api, make_user())
    r = api.post(f"/api/v1/records/{started['record']['id']}/complete", headers=other)
    assert r.status_code == 404


def test_direct_upload_needs_object_storage(api, patient_headers):
    r = _start(api, patient_headers)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "records.direct_upload_unavailable"


def test_abandoned_direct_upload_is_purged(api, s3, patient_headers, settings):
    from datetime import timedelta

    from django.utils import timezone

    from records.services import records_purge

    started = _start(api, patient_headers).json()
    _send(started["upload"], PDF)  # uploaded, never finalised
    assert len(keys(s3)) == 1
    assert records_purge() == 0  # its link has not expired yet
    later = timezone.now() + timedelta(seconds=settings.RECORDS_DIRECT_UPLOAD_TTL, hours=2)
    assert records_purge(now=later) == 1
    assert keys(s3) == []
    record = MedicalRecord.objects.get(id=started["record"]["id"])
    assert record.deleted_at is not None and record.purged_at is not None


def test_file_replaced_after_completion_is_rejected_not_served(
    api, clamd_on, s3, patient, patient_headers
):
    from realtime.models import Notification

    started = _start(api, patient_headers).json()
    record_id = started["record"]["id"]
    _send(started["upload"], PDF)
    r = api.post(f"/api/v1/records/{record_id}/complete", headers=patient_headers)
    assert r.status_code == 200
    _send(started["upload"], EXE)  # the form is still valid: the object is swapped
    assert scanned(record_id) == "rejected"
    assert keys(s3) == []
    assert MedicalRecord.objects.get(id=record_id).status == "rejected"
    assert Notification.objects.filter(user=patient, kind="records.rejected").exists()


def test_the_move_out_of_quarantine_insists_on_the_scanned_version(
    api, clamd_on, s3, patient_headers, monkeypatch
):
    """S3 refuses the copy when the object is no longer the version that was scanned
    (``CopySourceIfMatch``). moto does not enforce that header, so this checks that the
    condition sent is the ETag of the bytes clamd read."""
    from records import storage

    started = _start(api, patient_headers).json()
    record_id = started["record"]["id"]
    _send(started["upload"], PDF)
    api.post(f"/api/v1/records/{record_id}/complete", headers=patient_headers)
    etag = s3.head_object(Bucket=s3.bucket, Key=f"telemed/quarantine/{record_id}")["ETag"]
    client = storage._s3_client()
    copies = []
    real_copy = client.copy_object

    def spy(**kwargs):
        copies.append(kwargs)
        return real_copy(**kwargs)

    monkeypatch.setattr(client, "copy_object", spy)
    assert scan_record.call(record_id) == "clean"
    assert [c["CopySourceIfMatch"] for c in copies] == [etag]


@pytest.mark.parametrize("first", ["clean", "infected", "deleted"])
def test_what_a_reused_form_leaves_in_quarantine_is_swept_once_it_expired(
    api, clamd_on, s3, patient, patient_headers, first
):
    """The form stays usable until it expires, after the file was scanned, refused or
    deleted: bytes it puts back in quarantine were never scanned and nothing refers to
    them. A sweep enqueued for the form's expiry deletes them, and keeps a file that still
    waits there."""
    from django_tasks_db.models import DBTaskResult

    from records.tasks import quarantine_sweep

    started = _start(api, patient_headers).json()
    record_id = started["record"]["id"]
    [sweep] = DBTaskResult.objects.filter(task_path=quarantine_sweep.module_path)
    assert sweep.args_kwargs["args"] == [record_id]
    expires = MedicalRecord.objects.get(id=record_id).upload_expires_at
    assert expires is not None and sweep.run_after > expires  # once the form is dead
    assert quarantine_sweep.call(record_id) == "kept"  # still waiting for its file
    _send(started["upload"], procs.EICAR if first == "infected" else PDF)
    api.post(f"/api/v1/records/{record_id}/complete", headers=patient_headers)
    assert quarantine_sweep.call(record_id) == "kept"  # waiting for its scan
    assert scan_record.call(record_id) == ("clean" if first == "deleted" else first)
    if first == "deleted":
        assert (
            api.delete(f"/api/v1/records/{record_id}", headers=patient_headers).status_code == 204
        )
    assert _send(started["upload"], procs.EICAR).status_code in (200, 201, 204)  # reused
    quarantine = f"telemed/quarantine/{record_id}"
    assert quarantine in keys(s3)
    assert quarantine_sweep.call(record_id) == "deleted"
    assert quarantine not in keys(s3)
    kept = [] if first == "infected" else [f"telemed/records/{patient.id}/{record_id}"]
    assert keys(s3) == kept  # the record's own file, if any, untouched
