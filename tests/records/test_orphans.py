"""The sweep of objects no record needs (``records.orphans``), on local disk and on S3: what a
lost delete, a rolled-back upload, a refused or purged file left is deleted once older than
the grace period; what a record still needs, and anything fresh, is kept."""

from __future__ import annotations

import io
import logging
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from records import orphans, storage
from records.models import MedicalRecord, ScanStatus
from records.orphans import orphans_sweep
from records.selectors import Origin
from records.services import record_delete, records_purge
from records.tasks import records_housekeeping, scan_record
from tests import procs
from tests.records.conftest import PDF, scanned, upload

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["local", "s3"])
def backend(request: Any, settings: Any, tmp_path: Any) -> str:
    """S3 (the suite's endpoint, a bucket of the test) or local disk in a folder of the test:
    the sweep sees no other test's files."""
    if request.param == "s3":
        request.getfixturevalue("s3")
    else:
        settings.STORAGE_BACKEND = "local"
        settings.STORAGES = {
            **settings.STORAGES,
            "default": {
                "BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": tmp_path / "media", "base_url": None},
            },
        }
    return str(request.param)


def _put(key: str, content: bytes = PDF) -> str:
    storage.save(key, io.BytesIO(content), "application/pdf")
    assert storage.exists(key)
    return key


def _keys(record_id: Any) -> tuple[str, str]:
    record = MedicalRecord.objects.get(id=record_id)
    return storage.quarantine_key(record_id), storage.clean_key(record.patient_id, record_id)


def _uploaded(api: Any, headers: dict[str, str], content: bytes = PDF) -> str:
    r = upload(api, headers, content, "a.pdf")
    assert r.status_code == 201, r.json()
    return str(r.json()["id"])


def _past_grace() -> Any:
    return timezone.now() + orphans.grace() + timedelta(minutes=1)


def test_old_orphans_are_deleted_and_what_records_need_is_kept(
    api, clamd_on, backend, patient, patient_headers
):
    # Purged after an interrupted promotion: the purge deleted its row's key, not the copy.
    purged = _uploaded(api, patient_headers)
    purged_q, purged_c = _keys(purged)
    storage.copy_scanned(purged_q, purged_c)
    record_delete(patient=patient, record_id=purged, origin=Origin())
    assert records_purge(now=timezone.now() + timedelta(days=365)) == 1
    assert not storage.exists(purged_q) and storage.exists(purged_c)

    # Clean, its quarantined object's delete lost (the test's transaction never commits,
    # so the on-commit delete never runs: as if its worker died after the commit).
    clean = _uploaded(api, patient_headers)
    assert scan_record.call(clean) == "clean"
    clean_q, clean_c = _keys(clean)
    assert storage.exists(clean_q) and storage.exists(clean_c)
    clean_link = _put(f"{clean_c.rsplit('/', 1)[0]}/.{clean}.4242.77")  # a promotion's leftover

    # Infected, its deletes lost likewise.
    infected = _uploaded(api, patient_headers, procs.EICAR)
    assert scan_record.call(infected) == "infected"
    infected_q, _ = _keys(infected)
    assert storage.exists(infected_q)
    assert MedicalRecord.objects.get(id=infected).storage_key == ""

    # Pending: its quarantined object; and one whose promotion was interrupted (the clean
    # copy is there too, and, on disk, a temporary link).
    pending = _uploaded(api, patient_headers)
    pending_q, _ = _keys(pending)
    interrupted = _uploaded(api, patient_headers)
    interrupted_q, interrupted_c = _keys(interrupted)
    storage.copy_scanned(interrupted_q, interrupted_c)
    interrupted_link = _put(f"{interrupted_c.rsplit('/', 1)[0]}/.{interrupted}.4242.77")

    # Deleted by its owner, kept for the retention time (the purge's business).
    deleted = _uploaded(api, patient_headers)
    assert scanned(deleted) == "clean"
    _, deleted_c = _keys(deleted)
    record_delete(patient=patient, record_id=deleted, origin=Origin())

    # No row at all: an upload whose row was rolled back; a name that is no record's.
    rolled_back = _put(storage.quarantine_key(uuid.uuid4()))
    stray = _put("quarantine/not-a-record")
    elsewhere = _put(f"other/{uuid.uuid4()}")  # not a prefix of records: never looked at

    needed = [clean_c, pending_q, interrupted_q, interrupted_c, interrupted_link, deleted_c]
    orphaned = [purged_c, clean_q, clean_link, infected_q, rolled_back, stray]

    assert orphans_sweep(now=timezone.now()) == 0  # all fresh
    assert all(storage.exists(key) for key in needed + orphaned + [elsewhere])

    assert orphans_sweep(now=_past_grace()) == len(orphaned)
    assert [key for key in orphaned if storage.exists(key)] == []
    assert [key for key in needed if not storage.exists(key)] == []
    assert storage.exists(elsewhere)
    assert orphans_sweep(now=_past_grace()) == 0

    # What was kept still serves its record: the pending files are scanned and promoted.
    assert scanned(pending) == "clean"
    assert scanned(interrupted) == "clean"
    record = MedicalRecord.objects.get(id=interrupted)
    assert (record.status, record.storage_key) == (ScanStatus.CLEAN, interrupted_c)
    with storage.open_stream(interrupted_c) as stream:
        assert stream.read() == PDF


def test_the_grace_period_is_a_setting(backend, settings):
    settings.RECORDS_ORPHAN_GRACE_SECONDS = 3600
    orphan = _put(storage.quarantine_key(uuid.uuid4()))
    now = timezone.now()
    assert orphans_sweep(now=now + timedelta(minutes=59)) == 0
    assert storage.exists(orphan)
    assert orphans_sweep(now=now + timedelta(minutes=61)) == 1
    assert not storage.exists(orphan)


def _waiting_record(record_id: uuid.UUID, patient: Any) -> str:
    """A record pending its scan, under a chosen id (so that its key sorts where we want)."""
    key = storage.quarantine_key(record_id)
    MedicalRecord.objects.create(
        id=record_id,
        patient=patient,
        uploaded_by=patient,
        category="lab_result",
        title="t",
        file_name="a.pdf",
        content_type="application/pdf",
        size=len(PDF),
        storage_key=key,
        status=ScanStatus.PENDING,
    )
    return _put(key)


def test_each_run_looks_at_a_bounded_number_of_objects_and_the_next_goes_on(
    backend, patient, monkeypatch
):
    kept = [_waiting_record(uuid.UUID(int=n), patient) for n in (1, 2, 3)]
    orphaned = [
        _put(storage.quarantine_key(uuid.UUID(f"ffffffff-0000-4000-8000-00000000000{n}")))
        for n in (1, 2, 3)
    ]
    listed: list[int] = []
    real_list = storage.list_objects

    def spy(folder: str, **kwargs: Any) -> Any:
        found, after = real_list(folder, **kwargs)
        listed.append(len(found))
        return found, after

    monkeypatch.setattr(storage, "list_objects", spy)
    later = _past_grace()
    # Keys in order: the three kept ones first. Without going on where it stopped, every
    # run would look at the first two again and never reach the orphans.
    assert [orphans_sweep(now=later, limit=2) for _ in range(4)] == [0, 1, 2, 0]
    assert max(listed) <= 2
    assert [key for key in orphaned if storage.exists(key)] == []
    assert all(storage.exists(key) for key in kept)


def test_a_delete_storage_refuses_is_counted_and_retried_and_no_key_is_logged(
    backend, monkeypatch, caplog
):
    orphaned = [_put(storage.quarantine_key(uuid.uuid4())) for _ in range(3)]
    real_delete, refused = storage.delete, list[str]()

    def flaky(key: str) -> None:
        if not refused:
            refused.append(key)
            raise OSError(f"storage away: {key}")
        real_delete(key)

    monkeypatch.setattr(storage, "delete", flaky)
    with caplog.at_level(logging.INFO, logger="records.orphans"):
        assert orphans_sweep(now=_past_grace()) == 2
        assert storage.exists(refused[0])
        assert orphans_sweep(now=_past_grace()) == 1  # the walk started over
    assert [key for key in orphaned if storage.exists(key)] == []
    messages = [r for r in caplog.records if r.name == "records.orphans"]
    assert any(r.getMessage() == "orphan object not deleted (OSError)" for r in messages)
    swept = [r for r in messages if r.getMessage() == "orphan objects swept"]
    assert [(r.__dict__["deleted"], r.__dict__["failed"]) for r in swept] == [(2, 1), (1, 0)]
    for r in messages:
        logged = repr(r.__dict__)
        assert not any(key.rsplit("/", 1)[1] in logged for key in orphaned)


def test_the_housekeeping_loop_sweeps(backend, settings):
    settings.RECORDS_ORPHAN_GRACE_SECONDS = 0
    orphan = _put(storage.quarantine_key(uuid.uuid4()))
    assert records_housekeeping.call() == {"purged": 0, "orphans_deleted": 1, "scans_requeued": 0}
    assert not storage.exists(orphan)
