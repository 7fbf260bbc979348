"""Task rows left RUNNING by a worker that died: run again when safe, else failed."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from bookings.tasks import housekeeping
from core.reclaim import tasks_reclaim
from realtime.deliveries import send_deliveries

pytestmark = pytest.mark.django_db


def claimed(task, started_ago: timedelta, *args) -> DBTaskResult:
    row = DBTaskResult.objects.get(id=task.enqueue(*args).id)
    row.claim("a-worker-that-died")
    DBTaskResult.objects.filter(id=row.id).update(started_at=timezone.now() - started_ago)
    return row


def test_a_task_whose_worker_died_runs_again_if_safe_else_is_failed(settings):
    settings.TASK_RUNNING_TIMEOUT_SECONDS = 600
    deliveries = claimed(send_deliveries, timedelta(minutes=11), [])
    loop = claimed(housekeeping, timedelta(minutes=11))
    still_running = claimed(send_deliveries, timedelta(minutes=9), [])
    assert tasks_reclaim.call() == {"run_again": 1, "failed": 1, "loops_restarted": 3}
    status = dict(DBTaskResult.objects.values_list("id", "status"))
    assert (status[deliveries.id], status[loop.id], status[still_running.id]) == (
        "READY", "FAILED", "RUNNING",
    )  # fmt: skip
    assert DBTaskResult.objects.ready().filter(id=deliveries.id).exists()  # a worker takes it
    # the next run waits already, whatever becomes of this one
    assert DBTaskResult.objects.filter(task_path=tasks_reclaim.module_path, status="READY")


def test_a_task_that_took_its_worker_down_three_times_is_failed(settings):
    settings.TASK_RUNNING_TIMEOUT_SECONDS = 600
    row = claimed(send_deliveries, timedelta(minutes=11), [])
    DBTaskResult.objects.filter(id=row.id).update(worker_ids=["w1", "w2", "w3"])
    assert tasks_reclaim.call() == {"run_again": 0, "failed": 1, "loops_restarted": 3}
    assert DBTaskResult.objects.get(id=row.id).status == "FAILED"


def test_a_loop_whose_chain_ended_is_started_again_and_never_doubled():
    from bookings.tasks import housekeeping

    def waiting() -> int:
        return DBTaskResult.objects.filter(
            task_path=housekeeping.module_path, status="READY"
        ).count()

    assert waiting() == 0  # its last run failed to enqueue the next one: the chain ended
    tasks_reclaim.call()
    assert waiting() == 1  # started again
    housekeeping.call()  # a run while its next one waits already
    tasks_reclaim.call()
    assert waiting() == 1  # neither the run nor reclaim added a second chain


def test_a_task_given_up_runs_its_hook_with_its_arguments(settings, monkeypatch):
    from core import reclaim

    settings.TASK_RUNNING_TIMEOUT_SECONDS = 600
    row = claimed(send_deliveries, timedelta(minutes=11), ["d1", "d2"])
    DBTaskResult.objects.filter(id=row.id).update(worker_ids=["w1", "w2", "w3"])
    calls: list[list[str]] = []
    monkeypatch.setitem(reclaim.GIVEN_UP, send_deliveries.module_path, calls.append)
    assert tasks_reclaim.call()["failed"] == 1
    assert calls == [["d1", "d2"]]
    assert DBTaskResult.objects.get(id=row.id).status == "FAILED"


def test_a_hook_that_raises_leaves_its_task_for_the_next_run(settings, monkeypatch):
    from core import reclaim

    settings.TASK_RUNNING_TIMEOUT_SECONDS = 600
    row = claimed(housekeeping, timedelta(minutes=11))
    other = claimed(send_deliveries, timedelta(minutes=11), [])
    DBTaskResult.objects.filter(id=other.id).update(worker_ids=["w1", "w2", "w3"])

    def broken() -> None:
        raise RuntimeError("the hook's database is down")

    monkeypatch.setitem(reclaim.GIVEN_UP, housekeeping.module_path, broken)
    assert tasks_reclaim.call()["failed"] == 1
    status = dict(DBTaskResult.objects.values_list("id", "status"))
    assert (status[row.id], status[other.id]) == ("RUNNING", "FAILED")
    monkeypatch.setitem(reclaim.GIVEN_UP, housekeeping.module_path, lambda: None)
    assert tasks_reclaim.call()["failed"] == 1
    assert DBTaskResult.objects.get(id=row.id).status == "FAILED"


def test_the_reclaim_loop_is_started_again_by_the_other_loops_when_its_chain_ends():
    """tasks_reclaim restarts the other loops; a run of any of them restarts it (its own
    chain ends as theirs can: its first line failed on a database blip, its worker died)."""
    from realtime.deliveries import deliveries_housekeeping
    from records.tasks import records_housekeeping

    def waiting() -> int:
        return DBTaskResult.objects.filter(
            task_path=tasks_reclaim.module_path, status="READY"
        ).count()

    for loop in (housekeeping, records_housekeeping, deliveries_housekeeping):
        DBTaskResult.objects.filter(task_path=tasks_reclaim.module_path).delete()
        loop.call()
        assert waiting() == 1, loop.module_path
        loop.call()
        assert waiting() == 1  # never a second chain


def test_an_interrupted_copy_into_the_audit_mirror_runs_again(settings):
    """The mirror's copy is an upsert: a worker that died in it is made up for by running it
    again, not by waiting for someone to repair the mirror by hand."""
    from audit.tasks import mirror_event

    settings.TASK_RUNNING_TIMEOUT_SECONDS = 600
    row = claimed(mirror_event, timedelta(minutes=11), 1)
    tasks_reclaim.call()
    assert DBTaskResult.objects.get(id=row.id).status == "READY"
