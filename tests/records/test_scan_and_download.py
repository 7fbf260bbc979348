"""Scanning with the suite's real clamd, storage on the real S3 endpoint or local disk, and
downloads that only a clean verdict allows."""

from __future__ import annotations

import os
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.core import signing
from django.db.models import F
from django_tasks_db.models import DBTaskResult

from audit.models import AuditEvent
from realtime.models import Notification
from records.models import MedicalRecord
from records.tasks import scan_record
from tests import procs
from tests.factories import make_user
from tests.records.conftest import PDF, headers_for, keys, scanned, upload

pytestmark = pytest.mark.django_db


def test_eicar_upload_ends_infected_deleted_and_the_uploader_told(
    api, clamd_on, s3, patient, patient_headers
):
    record_id = upload(api, patient_headers, procs.EICAR, "innocent.txt").json()["id"]
    assert keys(s3) == [f"telemed/quarantine/{record_id}"]
    assert scanned(record_id) == "infected"
    record = MedicalRecord.objects.get(id=record_id)
    assert record.status == "infected"
    assert record.signature == "Eicar-Test-Signature.UNOFFICIAL"
    assert keys(s3) == []  # no object left in the bucket
    note = Notification.objects.get(user=patient, kind="records.infected")
    assert note.data == {"record_id": record_id, "status": "infected"}
    assert "Eicar-Test-Signature" in note.body and "innocent" not in note.body
    assert AuditEvent.objects.filter(action="records.infected", target_id=record_id).exists()
    r = api.get(f"/api/v1/records/{record_id}/download", headers=patient_headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "records.not_available"
    assert api.get(f"/api/v1/records/{record_id}", headers=patient_headers).json()["status"] == (
        "infected"
    )


def test_infected_notice_is_in_the_uploaders_language(api, clamd_on):
    patient = make_user(language="ar")
    record_id = upload(api, headers_for(api, patient), procs.EICAR, "x.txt").json()["id"]
    scan_record.call(record_id)
    note = Notification.objects.get(user=patient, kind="records.infected")
    assert note.title == "تم رفض ملف قمت برفعه"


def test_clean_pdf_becomes_clean_and_its_presigned_url_returns_the_exact_bytes(
    api, clamd_on, s3, patient, patient_headers
):
    record_id = upload(api, patient_headers, PDF, "Blood count.pdf").json()["id"]
    r = api.get(f"/api/v1/records/{record_id}/download", headers=patient_headers)
    assert r.status_code == 409  # pending: never downloadable before the verdict
    assert scanned(record_id) == "clean"
    clean_key = f"telemed/records/{patient.id}/{record_id}"
    assert keys(s3) == [clean_key]
    assert s3.head_object(Bucket=s3.bucket, Key=clean_key)["ServerSideEncryption"] == "AES256"
    r = api.get(f"/api/v1/records/{record_id}/download", headers=patient_headers)
    assert r.status_code == 200
    url = r.json()["url"]
    # The file's name is health data, and a URL ends up in logs: the object carries it.
    assert "Blood" not in url and "disposition" not in url.lower()
    query = parse_qs(urlsplit(url).query)
    assert "Signature" in query
    assert 50 <= int(query["Expires"][0]) - time.time() <= 60  # a minute: it cannot be revoked
    fetched = httpx.get(url)
    assert fetched.status_code == 200
    assert fetched.content == PDF
    assert fetched.headers["content-type"] == "application/pdf"
    assert fetched.headers["content-disposition"].startswith("attachment")
    assert "Blood_count.pdf" in fetched.headers["content-disposition"]
    assert httpx.get(url.split("?")[0]).status_code == 403  # the object itself is private
    assert AuditEvent.objects.filter(action="records.downloaded", target_id=record_id).exists()


def test_clamd_stopped_record_stays_pending_then_is_scanned_when_clamd_is_back(
    api, settings, patient_headers, tmp_path
):
    clamd_dir = tmp_path / "clamd"
    proc = procs.start_clamd(clamd_dir)
    settings.CLAMD_SOCKET = proc.info["socket"]
    proc.stop()
    if os.path.exists(proc.info["socket"]):
        os.unlink(proc.info["socket"])
    record_id = upload(api, patient_headers, PDF).json()["id"]
    assert scan_record.call(record_id) == "retry"
    assert scan_record.call(record_id) == "retry"
    record = MedicalRecord.objects.get(id=record_id)
    assert (record.status, record.scan_attempts) == ("pending", 2)
    retries = DBTaskResult.objects.filter(
        task_path="records.tasks.scan_record", run_after__gt=F("enqueued_at")
    ).order_by("run_after")
    delays = [(t.run_after - t.enqueued_at).total_seconds() for t in retries]
    # The first scan has no run_after (stored as a far-future sentinel); retries wait longer.
    assert [round(d) for d in delays if d < 86400] == [30, 60]
    r = api.get(f"/api/v1/records/{record_id}/download", headers=patient_headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "records.not_available"
    with procs.running(procs.start_clamd(clamd_dir)):
        assert scan_record.call(record_id) == "clean"
    assert MedicalRecord.objects.get(id=record_id).status == "clean"
    r = api.get(f"/api/v1/records/{record_id}/download", headers=patient_headers)
    assert r.status_code == 200


def test_no_scanner_configured_means_pending_forever(api, settings, patient_headers):
    settings.CLAMD_SOCKET = settings.CLAMD_HOST = ""
    record_id = upload(api, patient_headers, PDF).json()["id"]
    assert scan_record.call(record_id) == "retry"
    assert MedicalRecord.objects.get(id=record_id).status == "pending"


def test_local_disk_download_is_a_signed_expiring_link_that_checks_access_again(
    api, clamd_on, settings, patient, patient_headers
):
    record_id = upload(api, patient_headers, PDF, "scan.pdf").json()["id"]
    scan_record.call(record_id)
    r = api.get(f"/api/v1/records/{record_id}/download", headers=patient_headers)
    assert r.status_code == 200
    path = r.json()["url"].split("testserver", 1)[1]
    fetched = api.get(path)
    assert fetched.status_code == 200
    assert b"".join(fetched.streaming_content) == PDF
    assert fetched["Content-Type"] == "application/pdf"
    assert fetched["Content-Disposition"] == 'attachment; filename="scan.pdf"'
    events = AuditEvent.objects.filter(target_id=record_id, action="records.downloaded")
    assert events.get().data["via"] == "signed_link"
    token = path.rsplit("/", 1)[1]
    forged = token[:-3] + ("aaa" if token[-3:] != "aaa" else "bbb")
    assert api.get(path.replace(token, forged)).status_code == 404
    other = make_user()
    stolen = signing.dumps({"r": record_id, "u": str(other.id)}, salt="wrong-salt")
    assert api.get(path.replace(token, stolen)).status_code == 404
    settings.RECORDS_DOWNLOAD_TTL = -1  # every link is now past its expiry
    r = api.get(path)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "records.download_link_invalid"
    settings.RECORDS_DOWNLOAD_TTL = 300
    api.delete(f"/api/v1/records/{record_id}", headers=patient_headers)
    assert api.get(path).status_code == 404  # deleted since the link was made


@pytest.mark.django_db(transaction=True)
def test_the_task_worker_scans_what_the_upload_enqueued(api, clamd_on, patient_headers):
    from tests.platform.test_tasks import run_worker_batch

    infected = upload(api, patient_headers, procs.EICAR, "a.txt").json()["id"]
    clean = upload(api, patient_headers, PDF, "b.pdf").json()["id"]
    run_worker_batch()
    statuses = dict(MedicalRecord.objects.values_list("id", "status"))
    assert {str(k): v for k, v in statuses.items()} == {infected: "infected", clean: "clean"}


def test_verdict_locks_only_the_record_row(api, clamd_on, patient_headers):
    """FOR UPDATE on the joined user row deadlocked concurrent uploads by that user (their
    deferred foreign-key check) against the audit chain lock (found by bench/record_uploads.py)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    record_id = upload(api, patient_headers, PDF).json()["id"]
    with CaptureQueriesContext(connection) as queries:
        assert scan_record.call(record_id) == "clean"
    locking = [q["sql"] for q in queries if "FOR UPDATE" in q["sql"]]
    assert locking and all('FOR UPDATE OF "records_medicalrecord"' in sql for sql in locking)


def test_storage_failure_during_the_verdict_leaves_the_record_pending_and_retried(
    api, clamd_on, patient_headers, monkeypatch
):
    from records import storage

    record_id = upload(api, patient_headers, PDF).json()["id"]

    def broken(source: str, target: str) -> None:
        raise OSError("storage is down")

    monkeypatch.setattr(storage, "copy_scanned", broken)
    assert scan_record.call(record_id) == "retry"
    record = MedicalRecord.objects.get(id=record_id)
    assert (record.status, record.scan_attempts) == ("pending", 1)
    monkeypatch.undo()
    assert scan_record.call(record_id) == "clean"


def test_files_promoted_before_the_objects_carried_their_name_are_restamped_once(
    api, clamd_on, s3, patient, patient_headers
):
    """Promoted when links named the file, an object holds no Content-Disposition: the
    one-off command gives it one (kept encrypted); the second run finds nothing to do."""
    from io import StringIO

    from django.core.management import call_command

    record_id = upload(api, patient_headers, PDF, "Old scan.pdf").json()["id"]
    assert scanned(record_id) == "clean"
    key = f"telemed/records/{patient.id}/{record_id}"
    s3.put_object(  # as the earlier release left it
        Bucket=s3.bucket, Key=key, Body=PDF, ContentType="application/pdf",
        ServerSideEncryption="AES256",
    )  # fmt: skip
    url = api.get(f"/api/v1/records/{record_id}/download", headers=patient_headers).json()["url"]
    assert "content-disposition" not in httpx.get(url).headers

    out = StringIO()
    call_command("records_restamp", stdout=out)
    assert out.getvalue().strip() == "1 file(s) restamped"
    fetched = httpx.get(url)
    assert fetched.content == PDF and fetched.headers["content-type"] == "application/pdf"
    assert "Old_scan.pdf" in fetched.headers["content-disposition"]
    assert s3.head_object(Bucket=s3.bucket, Key=key)["ServerSideEncryption"] == "AES256"
    call_command("records_restamp", stdout=(again := StringIO()))
    assert again.getvalue().strip() == "0 file(s) restamped"
