"""A database failure during a scan never leaves its record pending for ever: it is retried
like a scanner that cannot be asked; a retry that cannot be written is enqueued again
uncounted; a scan whose task failed anyway is found by the records' housekeeping."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import OperationalError
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from records import services, tasks
from records.models import MedicalRecord
from records.tasks import records_housekeeping, scan_record
from tests.records.conftest import PDF, scanned, upload

pytestmark = pytest.mark.django_db


def _waiting(record_id: str) -> Any:
    return DBTaskResult.objects.filter(
        task_path=scan_record.module_path, status="READY", args_kwargs__args__0=record_id
    )


def _lost() -> None:
    raise OperationalError("server closed the connection unexpectedly")


def test_a_database_error_on_the_first_read_is_retried_with_backoff(
    api, patient_headers, monkeypatch
):
    record_id = upload(api, patient_headers, PDF).json()["id"]

    class Records:
        class objects:  # noqa: N801
            filter = staticmethod(lambda **_: _lost())

    monkeypatch.setattr(tasks, "MedicalRecord", Records)
    assert scan_record.call(record_id) == "retry"
    assert MedicalRecord.objects.get(id=record_id).scan_attempts == 1
    assert _waiting(record_id).count() == 2  # the upload's (run here) and the retry


def test_a_retry_the_database_refuses_is_enqueued_again_after_the_longest_backoff(
    api, patient_headers, monkeypatch, settings
):
    record_id = upload(api, patient_headers, PDF).json()["id"]
    monkeypatch.setattr(services, "_locked", _lost)  # the verdict, then the retry, fail
    before = timezone.now()
    assert scan_record.call(record_id) == "retry"
    again = _waiting(record_id).order_by("run_after").first()  # the upload's: "no time"
    cap = timedelta(seconds=settings.RECORDS_SCAN_RETRY_MAX_SECONDS)
    assert again is not None and before + cap <= again.run_after <= timezone.now() + cap


def test_housekeeping_enqueues_again_a_scan_whose_task_failed(
    api, clamd_on, patient_headers, settings
):
    stuck, recent, queued = (upload(api, patient_headers, PDF).json()["id"] for _ in range(3))
    # The worker recorded the scans of stuck and recent failed; queued's still waits.
    DBTaskResult.objects.filter(args_kwargs__args__0__in=[stuck, recent]).update(status="FAILED")
    old = timezone.now() - timedelta(seconds=settings.RECORDS_SCAN_RETRY_MAX_SECONDS + 60)
    MedicalRecord.objects.filter(id__in=[stuck, queued]).update(created_at=old)
    assert records_housekeeping.call()["scans_requeued"] == 1
    assert (_waiting(stuck).count(), _waiting(recent).count(), _waiting(queued).count()) == (
        1,
        0,
        1,
    )
    assert MedicalRecord.objects.get(id=stuck).scan_attempts == 1  # counted: bounded
    assert services.scans_requeue() == 0  # its scan waits now
    assert scanned(stuck) == "clean"


def test_a_lost_scan_at_its_last_attempt_is_refused(api, patient_headers, settings):
    settings.RECORDS_SCAN_MAX_ATTEMPTS = 1
    record_id = upload(api, patient_headers, PDF).json()["id"]
    DBTaskResult.objects.filter(task_path=scan_record.module_path).update(status="FAILED")
    later = timezone.now() + timedelta(seconds=settings.RECORDS_SCAN_RETRY_MAX_SECONDS + 60)
    assert services.scans_requeue(now=later) == 1
    assert MedicalRecord.objects.get(id=record_id).status == "rejected"
    assert not _waiting(record_id).exists()


def test_scans_still_waiting_do_not_hide_newer_lost_ones(
    api, clamd_on, patient_headers, settings, monkeypatch
):
    """A backlog of waiting retries (clamd away) as old as the batch does not stop the
    housekeeping from finding a newer record whose scan was lost."""
    monkeypatch.setattr(services, "SCANS_REQUEUE_BATCH", 2)
    waiting = [upload(api, patient_headers, PDF).json()["id"] for _ in range(3)]
    lost = upload(api, patient_headers, PDF).json()["id"]
    DBTaskResult.objects.filter(args_kwargs__args__0=lost).update(status="FAILED")
    old = timezone.now() - timedelta(seconds=settings.RECORDS_SCAN_RETRY_MAX_SECONDS + 60)
    for age, record_id in enumerate([*waiting, lost]):  # the waiting ones are the oldest
        MedicalRecord.objects.filter(id=record_id).update(created_at=old - timedelta(days=4 - age))
    assert services.scans_requeue() == 1
    assert _waiting(lost).count() == 1
    assert [MedicalRecord.objects.get(id=i).scan_attempts for i in waiting] == [0, 0, 0]
