"""A scan that cannot finish never leaves a record pending for ever: a verdict whose
transaction rolls back leaves the file where its row says; a file too large for clamd, one
whose scans keep failing and one whose scan keeps killing its worker are refused, the
uploader told."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.test import TestCase
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from audit.models import AuditEvent
from core.reclaim import MAX_RUNS, tasks_reclaim
from realtime.models import Notification
from records import scanner, services, storage
from records.models import MedicalRecord
from records.selectors import Origin
from records.services import record_delete, records_purge
from records.tasks import scan_record
from tests import procs
from tests.factories import make_user
from tests.records.conftest import PDF, headers_for, scanned, upload

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["local", "s3"])
def backend(request: Any) -> str:
    if request.param == "s3":
        request.getfixturevalue("s3")
    return str(request.param)


@pytest.fixture
def audit_fails_once(monkeypatch: Any) -> list[str]:
    """The verdict's audit write raises once (the audit store, a deadlock...): the verdict's
    transaction rolls back after its storage work."""
    real, failed = services.audit, list[str]()

    def flaky(actor: Any, action: str, *args: Any, **kwargs: Any) -> None:
        if action in {"records.clean", "records.infected"} and not failed:
            failed.append(action)
            raise RuntimeError("audit store unavailable")
        real(actor, action, *args, **kwargs)

    monkeypatch.setattr(services, "audit", flaky)
    return failed


def _keys(record_id: str) -> tuple[str, str]:
    record = MedicalRecord.objects.get(id=record_id)
    return storage.quarantine_key(record_id), storage.clean_key(record.patient_id, record_id)


def _read(key: str) -> bytes:
    with storage.open_stream(key) as stream:
        return bytes(stream.read())


def test_a_clean_verdict_rolled_back_leaves_the_file_in_quarantine_and_the_rerun_promotes_it(
    api, clamd_on, backend, patient, patient_headers, audit_fails_once
):
    record_id = upload(api, patient_headers, PDF).json()["id"]
    quarantine, clean = _keys(record_id)
    assert scanned(record_id) == "retry"
    assert audit_fails_once == ["records.clean"]
    record = MedicalRecord.objects.get(id=record_id)
    assert (record.status, record.storage_key) == ("pending", quarantine)
    assert storage.exists(quarantine) and not storage.exists(clean)  # as the row says
    assert scanned(record_id) == "clean"
    record = MedicalRecord.objects.get(id=record_id)
    assert (record.status, record.storage_key) == ("clean", clean)
    assert _read(clean) == PDF and not storage.exists(quarantine)
    # Deleted and purged, nothing of it is left in storage.
    record_delete(patient=patient, record_id=record_id, origin=Origin())
    assert records_purge(now=timezone.now() + timedelta(days=365)) == 1
    assert not storage.exists(clean) and not storage.exists(quarantine)


def test_an_infected_verdict_rolled_back_keeps_the_file_until_the_rerun_refuses_it(
    api, clamd_on, backend, patient, patient_headers, audit_fails_once
):
    record_id = upload(api, patient_headers, procs.EICAR, "a.txt").json()["id"]
    quarantine, clean = _keys(record_id)
    assert scanned(record_id) == "retry"
    assert MedicalRecord.objects.get(id=record_id).status == "pending"
    assert storage.exists(quarantine)
    assert scanned(record_id) == "infected"
    assert not storage.exists(quarantine) and not storage.exists(clean)
    assert Notification.objects.filter(user=patient, kind="records.infected").count() == 1


@pytest.mark.parametrize("content", [PDF, procs.EICAR], ids=["clean", "infected"])
def test_a_pending_record_whose_file_was_already_moved_is_scanned_there_and_finished(
    api, clamd_on, backend, patient_headers, content
):
    """What a promotion rolled back after its move left (before moves waited for the
    commit): the quarantined object gone, the clean one there. It is scanned where it is."""
    record_id = upload(api, patient_headers, content, "a.pdf").json()["id"]
    quarantine, clean = _keys(record_id)
    storage.copy_scanned(quarantine, clean)
    storage.delete(quarantine)
    if content == PDF:
        assert scanned(record_id) == "clean"
        record = MedicalRecord.objects.get(id=record_id)
        assert (record.status, record.storage_key) == ("clean", clean)
        assert _read(clean) == PDF
    else:
        assert scanned(record_id) == "infected"
        assert not storage.exists(clean)


@pytest.fixture(scope="module")
def small_clamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A clamd of its own whose StreamMaxLength is 1 MB (the suite's takes 64 MB)."""
    workdir: Path = tmp_path_factory.mktemp("clamd-small")
    db = workdir / "db"
    db.mkdir()
    (db / "eicar.ndb").write_text(f"Eicar-Test-Signature:0:0:{procs.EICAR.hex()}\n")
    sock, conf = workdir / "clamd.sock", workdir / "clamd.conf"
    conf.write_text(
        f"LocalSocket {sock}\nDatabaseDirectory {db}\nForeground yes\n"
        f"LogFile {workdir / 'clamd.log'}\nTemporaryDirectory {workdir}\nStreamMaxLength 1M\n"
    )
    clamd_bin = shutil.which("clamd") or "/usr/sbin/clamd"
    proc = procs._spawn([clamd_bin, "-c", str(conf)], workdir / "clamd.out")
    with procs.running(proc):
        procs.wait_until(sock.exists, what="clamd socket")
        yield str(sock)


def _big_pdf(size: int) -> bytes:
    return PDF + b"%" + b"x" * (size - len(PDF) - 2) + b"\n"


@pytest.mark.parametrize("size", [1024 * 1024 + 10_000, 4 * 1024 * 1024], ids=["1MB", "4MB"])
def test_a_file_longer_than_clamds_stream_limit_is_refused_not_retried(
    api, settings, small_clamd, patient, patient_headers, size
):
    settings.CLAMD_SOCKET, settings.CLAMD_HOST = small_clamd, ""
    with pytest.raises(scanner.ScanTooLarge):
        scanner.scan(io.BytesIO(_big_pdf(size)))
    record_id = upload(api, patient_headers, _big_pdf(size), "big.pdf").json()["id"]
    quarantine, _ = _keys(record_id)
    scans = DBTaskResult.objects.filter(task_path=scan_record.module_path)
    assert scans.count() == 1
    assert scanned(record_id) == "rejected"
    record = MedicalRecord.objects.get(id=record_id)
    assert (record.status, record.storage_key, record.scan_attempts) == ("rejected", "", 0)
    assert not storage.exists(quarantine)
    assert scans.count() == 1  # no retry enqueued
    note = Notification.objects.get(user=patient, kind="records.rejected")
    assert note.data == {
        "record_id": record_id,
        "status": "rejected",
        "reason": "too_large_to_scan",
    }
    assert "too large for the virus scan" in note.body
    event = AuditEvent.objects.get(action="records.rejected", target_id=record_id)
    assert event.data["reason"] == "too_large_to_scan"
    # A file within the limit is still scanned.
    small_id = upload(api, patient_headers, PDF).json()["id"]
    assert scanned(small_id) == "clean"


def test_a_scan_that_keeps_failing_is_refused_after_the_configured_attempts(api, settings):
    settings.CLAMD_SOCKET = settings.CLAMD_HOST = ""  # clamd never answers
    settings.RECORDS_SCAN_MAX_ATTEMPTS = 3
    patient = make_user(language="ar")
    record_id = upload(api, headers_for(api, patient), PDF).json()["id"]
    quarantine, _ = _keys(record_id)
    assert [scanned(record_id) for _ in range(3)] == ["retry", "retry", "rejected"]
    record = MedicalRecord.objects.get(id=record_id)
    assert (record.status, record.storage_key, record.scan_attempts) == ("rejected", "", 3)
    assert not storage.exists(quarantine)
    scans = DBTaskResult.objects.filter(task_path=scan_record.module_path)
    assert scans.count() == 3  # the upload's and two retries: none after the last attempt
    note = Notification.objects.get(user=patient, kind="records.rejected")
    assert note.data["reason"] == "scan_failed"
    assert note.title == "تم رفض ملف قمت برفعه"
    assert "تعذّر فحص" in note.body
    event = AuditEvent.objects.get(action="records.rejected", target_id=record_id)
    assert event.data["reason"] == "scan_failed"


def test_a_scan_whose_worker_died_too_often_is_given_up_and_the_file_refused(
    api, patient, patient_headers, settings
):
    settings.TASK_RUNNING_TIMEOUT_SECONDS = 600
    record_id = upload(api, patient_headers, PDF).json()["id"]
    quarantine, _ = _keys(record_id)
    row = DBTaskResult.objects.get(task_path=scan_record.module_path)
    row.claim("a-worker-that-died")
    DBTaskResult.objects.filter(id=row.id).update(
        started_at=timezone.now() - timedelta(days=1),
        worker_ids=[f"w{i}" for i in range(MAX_RUNS)],
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        assert tasks_reclaim.call()["failed"] == 1
    assert DBTaskResult.objects.get(id=row.id).status == "FAILED"
    record = MedicalRecord.objects.get(id=record_id)
    assert (record.status, record.storage_key) == ("rejected", "")
    assert not storage.exists(quarantine)
    note = Notification.objects.get(user=patient, kind="records.rejected")
    assert note.data["reason"] == "scan_failed"
    assert AuditEvent.objects.filter(action="records.rejected", target_id=record_id).exists()
