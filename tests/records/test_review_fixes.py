"""Fixes of a review of records: files on disk readable by the server's account only (and the
deploy check saying local storage is not encrypted at rest), a late /complete neither
accepted nor purged under the client's feet, the refusal notice's day in the uploader's zone,
no promotion of a file deleted during its scan, and the audited reads rate limited."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from django.utils import timezone

from audit.models import AuditEvent
from records import checks, services, storage
from records.models import MedicalRecord
from records.tasks import scan_record
from tests import procs
from tests.doctors.factories import doctor
from tests.factories import make_user
from tests.records.conftest import PDF, headers_for, keys, scanned, upload

pytestmark = pytest.mark.django_db


def _mode(key: str) -> int:
    return stat.S_IMODE(os.stat(storage.storage().path(key)).st_mode)


def _dir_mode(key: str) -> int:
    return stat.S_IMODE(os.stat(Path(storage.storage().path(key)).parent).st_mode)


# --- 1. local files: owner only; local storage is flagged as not encrypted at rest ----------


def test_local_record_files_and_folders_are_the_servers_accounts_only(
    api, clamd_on, patient, patient_headers
):
    record_id = upload(api, patient_headers).json()["id"]
    quarantined = storage.quarantine_key(record_id)
    assert (_mode(quarantined), _dir_mode(quarantined)) == (0o600, 0o700)
    assert scanned(record_id) == "clean"
    clean = storage.clean_key(patient.pk, record_id)
    assert (_mode(clean), _dir_mode(clean)) == (0o600, 0o700)
    assert _dir_mode(f"records/{patient.pk}") == 0o700  # records/ itself


def test_a_clean_copy_made_without_hard_links_is_the_servers_accounts_only(
    api, clamd_on, patient, patient_headers, monkeypatch
):
    record_id = upload(api, patient_headers).json()["id"]

    def no_links(src, dst):
        raise OSError("hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    assert scanned(record_id) == "clean"
    clean = storage.clean_key(patient.pk, record_id)
    assert _mode(clean) == 0o600
    with storage.open_stream(clean) as fh:
        assert fh.read() == PDF


def test_deploy_check_says_local_storage_is_not_encrypted_at_rest(settings):
    settings.STORAGE_BACKEND = "local"
    assert "records.W003" in {m.id for m in checks.check_records_setup()}


def test_deploy_check_is_quiet_about_encryption_on_s3(s3):
    assert "records.W003" not in {m.id for m in checks.check_records_setup()}


# --- 2. direct uploads: no /complete after expiry, no purge of a record completed meanwhile --


def _direct(api, headers):
    started = api.post(
        "/api/v1/records/uploads",
        {"category": "imaging", "title": "MRI", "file_name": "m.pdf"},
        content_type="application/json",
        headers=headers,
    ).json()
    sent = httpx.post(
        started["upload"]["url"], data=started["upload"]["fields"], files={"file": ("x", PDF)}
    )
    assert sent.status_code in (200, 201, 204), sent.text
    return started["record"]["id"]


def test_purge_leaves_an_upload_completed_after_its_listing(
    api, s3, patient_headers, settings, monkeypatch
):
    from django.db import transaction as real

    record_id = _direct(api, patient_headers)
    later = timezone.now() + timedelta(seconds=settings.RECORDS_DIRECT_UPLOAD_TTL, hours=2)
    completed: list[str | None] = []

    class Transaction:  # the client's /complete lands between the purge's listing and its lock
        on_commit = staticmethod(real.on_commit)

        @staticmethod
        def atomic(*args, **kwargs):
            if not completed:
                completed.append(None)
                r = api.post(f"/api/v1/records/{record_id}/complete", headers=patient_headers)
                completed[0] = r.json()["status"]
            return real.atomic(*args, **kwargs)

    monkeypatch.setattr(services, "transaction", Transaction)
    assert services.records_purge(now=later) == 0
    record = MedicalRecord.objects.get(id=record_id)
    assert completed == ["pending"]
    assert (record.status, record.deleted_at, record.purged_at) == ("pending", None, None)
    assert keys(s3) == [f"telemed/quarantine/{record_id}"]
    assert not AuditEvent.objects.filter(action="records.purged", target_id=record_id).exists()


def test_complete_after_the_upload_form_expired_is_refused(api, s3, patient_headers):
    record_id = _direct(api, patient_headers)
    expired = timezone.now() - services.COMPLETE_GRACE - timedelta(seconds=5)
    MedicalRecord.objects.filter(id=record_id).update(upload_expires_at=expired)
    r = api.post(
        f"/api/v1/records/{record_id}/complete",
        headers={**patient_headers, "Accept-Language": "ar"},
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "records.upload_not_received"
    assert (
        r.json()["error"]["message"] == "لم يصل الملف إلى التخزين بعد، أو انتهت صلاحية رابط الرفع."
    )
    assert MedicalRecord.objects.get(id=record_id).status == "awaiting_upload"
    assert not AuditEvent.objects.filter(action="records.uploaded", target_id=record_id).exists()
    assert services.records_purge(now=expired + timedelta(hours=1)) == 1  # then purged
    assert keys(s3) == []


def test_complete_just_after_expiry_is_still_accepted(api, s3, patient_headers):
    """A large file sent just before its form expired arrives a little after."""
    record_id = _direct(api, patient_headers)
    MedicalRecord.objects.filter(id=record_id).update(
        upload_expires_at=timezone.now() - timedelta(minutes=1)
    )
    r = api.post(f"/api/v1/records/{record_id}/complete", headers=patient_headers)
    assert r.status_code == 200 and r.json()["status"] == "pending", r.json()


# --- 3. the refusal notice's day is the uploader's --------------------------------------------


def test_refusal_notice_names_the_day_in_the_uploaders_zone(api, clamd_on):
    from realtime.models import Notification

    patient = make_user(time_zone="Asia/Riyadh")
    record_id = upload(api, headers_for(api, patient), procs.EICAR, "x.txt").json()["id"]
    # 22:30 UTC on 4 March is 01:30 on 5 March in Riyadh.
    MedicalRecord.objects.filter(id=record_id).update(
        created_at=datetime(2025, 3, 4, 22, 30, tzinfo=UTC)
    )
    assert scan_record.call(record_id) == "infected"
    body = Notification.objects.get(user=patient, kind="records.infected").body
    assert "2025-03-05" in body and "2025-03-04" not in body


# --- 4. a record deleted while its scan ran -------------------------------------------------


def _delete_during_scan(api, headers, record_id, monkeypatch):
    from records import scanner

    real = scanner.scan

    def scan_then_delete(stream):
        verdict = real(stream)
        assert api.delete(f"/api/v1/records/{record_id}", headers=headers).status_code == 204
        return verdict

    monkeypatch.setattr(scanner, "scan", scan_then_delete)


def test_a_clean_file_deleted_during_its_scan_is_not_promoted(
    api, clamd_on, patient, patient_headers, monkeypatch
):
    record_id = upload(api, patient_headers, PDF).json()["id"]
    _delete_during_scan(api, patient_headers, record_id, monkeypatch)
    assert scanned(record_id) == "skipped"
    record = MedicalRecord.objects.get(id=record_id)
    assert record.status == "pending" and record.deleted_at is not None
    assert record.storage_key == storage.quarantine_key(record_id)  # goes with the purge
    assert not storage.exists(storage.clean_key(patient.pk, record_id))
    assert not AuditEvent.objects.filter(action="records.clean", target_id=record_id).exists()


def test_an_infected_file_deleted_during_its_scan_is_still_removed(
    api, clamd_on, patient_headers, monkeypatch
):
    record_id = upload(api, patient_headers, procs.EICAR, "x.txt").json()["id"]
    _delete_during_scan(api, patient_headers, record_id, monkeypatch)
    assert scanned(record_id) == "infected"
    assert MedicalRecord.objects.get(id=record_id).storage_key == ""
    assert not storage.exists(storage.quarantine_key(record_id))


# --- 5. audited reads are rate limited --------------------------------------------------------


def _limited(r):
    assert r.status_code == 429, r.json()
    assert r.json()["error"]["code"] == "request.rate_limited"
    assert int(r["Retry-After"]) >= 1


@pytest.mark.parametrize("read", ["list", "detail", "grants", "grant"])
def test_audited_reads_are_rate_limited_per_user(api, patient_headers, settings, read):
    record_id = upload(api, patient_headers).json()["id"]
    verified = doctor()
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "records_read": "2/m/user"}
    requests = {
        "list": lambda: api.get("/api/v1/records", headers=patient_headers),
        "detail": lambda: api.get(f"/api/v1/records/{record_id}", headers=patient_headers),
        "grants": lambda: api.get(f"/api/v1/records/{record_id}/grants", headers=patient_headers),
        "grant": lambda: api.post(
            f"/api/v1/records/{record_id}/grants",
            {"doctor_id": str(verified.user.pk)},
            content_type="application/json",
            headers=patient_headers,
        ),
    }
    assert [requests[read]().status_code for _ in range(2)] in ([200, 200], [201, 201])
    audited = AuditEvent.objects.count()
    _limited(requests[read]())
    assert AuditEvent.objects.count() == audited  # refused before anything was written
    other = headers_for(api, make_user())  # per user: another is not limited
    assert api.get("/api/v1/records", headers=other).status_code == 200


def test_the_reads_share_one_rate(api, patient_headers, settings):
    record_id = upload(api, patient_headers).json()["id"]
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "records_read": "2/m/user"}
    assert api.get("/api/v1/records", headers=patient_headers).status_code == 200
    assert api.get(f"/api/v1/records/{record_id}", headers=patient_headers).status_code == 200
    _limited(api.get(f"/api/v1/records/{record_id}/grants", headers=patient_headers))


def test_complete_is_rate_limited_per_user(api, patient_headers, settings):
    record_id = upload(api, patient_headers).json()["id"]
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "records_complete": "1/m/user"}
    path = f"/api/v1/records/{record_id}/complete"
    assert api.post(path, headers=patient_headers).status_code == 200
    _limited(api.post(path, headers={**patient_headers, "Accept-Language": "ar"}))
