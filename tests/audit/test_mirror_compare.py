"""``manage.py audit_verify`` compares the primary with the MongoDB mirror when
``MONGODB_URI`` is set: rows removed from the end of the chain (which the chain alone cannot
show) or rewritten fail it; events not mirrored yet are reported, and copied again with
``--repair-mirror``."""

from __future__ import annotations

import io
from typing import Any

import pymongo
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tasks_db.models import DBTaskResult

from audit import tasks
from audit.models import AuditEvent
from audit.services import record

pytestmark = pytest.mark.django_db


def mirrored(n: int) -> list[AuditEvent]:
    """``n`` events, each copied to the mirror as the worker would."""
    events = [record(action="record.viewed", target_id=f"r-{i}") for i in range(n)]
    for event in events:
        tasks.mirror_event.call(event.id)
    DBTaskResult.objects.all().delete()  # the enqueued copies: done above
    return events


def verify(*args: str) -> str:
    out = io.StringIO()
    call_command("audit_verify", *args, stdout=out)
    return out.getvalue()


def test_a_clean_mirror_passes(mongo):
    mirrored(5)
    assert verify().splitlines() == [
        "audit chain OK: 5 events",
        "audit mirror OK: 5 events match",
    ]


def test_rows_removed_from_the_end_of_the_chain_are_caught(mongo):
    events = mirrored(6)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id >= %s", [events[4].id])
    record(action="auth.login")  # a new head, linked to what is left: the chain verifies

    with pytest.raises(CommandError) as exc:
        verify()
    assert exc.value.returncode == 1
    assert str(exc.value).startswith(
        f"audit mirror MISMATCH at event id {events[4].id} (in the mirror but not in the primary;"
    )


def test_a_rewritten_row_whose_chain_was_rebuilt_is_caught(mongo):
    from audit.selectors import mirror_check

    events = mirrored(3)
    mongo.update_one({"_id": events[1].id}, {"$set": {"hash": "f" * 64}})
    result = mirror_check()
    assert (result.ok, result.first_broken_id, result.broken, result.matched) == (
        False,
        events[1].id,
        1,
        2,
    )
    assert result.reason == "the primary's hash differs from the mirror's"


def test_a_mirror_gap_is_reported_not_failed_and_repaired_on_request(mongo):
    events = mirrored(7)
    mongo.delete_many({"_id": {"$in": [events[2].id, events[3].id]}})
    lagging = record(action="auth.logout")  # recorded, its copy not made yet
    DBTaskResult.objects.all().delete()

    out = verify()
    assert out.splitlines()[1] == (
        f"audit mirror OK: 5 events match; 3 not mirrored yet, the first id {events[2].id}"
        " (--repair-mirror copies them)"
    )
    assert not DBTaskResult.objects.exists()

    out = verify("--repair-mirror")
    assert out.splitlines()[1].endswith("; their copies enqueued")
    queued = DBTaskResult.objects.filter(task_path=tasks.mirror_event.module_path)
    assert sorted(row.args_kwargs["args"][0] for row in queued) == [
        events[2].id,
        events[3].id,
        lagging.id,
    ]
    for row in queued:
        tasks.mirror_event.call(*row.args_kwargs["args"])
    assert verify().splitlines()[1] == "audit mirror OK: 8 events match"


def test_the_comparison_reads_in_batches(mongo, monkeypatch):
    from audit.selectors import mirror_check

    events = mirrored(7)
    mongo.delete_one({"_id": events[5].id})
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM audit_auditevent WHERE id = %s", [events[6].id])
    batches: list[list[int]] = []
    with CaptureQueriesContext(connection) as queries:
        result = mirror_check(on_missing=lambda ids: batches.append(list(ids)), chunk=2)
    assert (result.ok, result.first_broken_id, result.matched) == (False, events[6].id, 5)
    assert (result.missing, result.first_missing_id) == (1, events[5].id)
    assert batches == [[events[5].id]]
    reads = [q["sql"] for q in queries.captured_queries if "audit_auditevent" in q["sql"]]
    assert len(reads) == 4  # 6 rows, 2 at a time, and the empty page that ends them
    assert all(sql.endswith("LIMIT 2") for sql in reads)


def test_without_a_mongodb_uri_only_the_chain_is_verified(settings):
    settings.MONGODB_URI = ""
    record(action="auth.login")
    assert verify() == "audit chain OK: 1 events\n"
    with pytest.raises(CommandError) as exc:
        verify("--repair-mirror")
    assert exc.value.returncode == 2


def test_an_unreachable_mirror_exits_2(mongo, monkeypatch):
    mirrored(1)

    def away() -> Any:
        raise pymongo.errors.ServerSelectionTimeoutError("mongo.test:27017: timed out")

    monkeypatch.setattr(tasks, "collection", away)
    with pytest.raises(CommandError) as exc:
        verify()
    assert (exc.value.returncode, str(exc.value)) == (
        2,
        "audit mirror not compared: ServerSelectionTimeoutError",
    )
