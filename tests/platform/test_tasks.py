import datetime as dt
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult, get_date_max

from telemed.worker import start_in_process_worker
from tests.procs import wait_until
from tests.testapp.models import TaskRun
from tests.testapp.tasks import record_run


def run_worker_batch():
    from django_tasks_db.management.commands.db_worker import Worker

    Worker(
        queue_names=["*"],
        interval=0,
        batch=True,
        backend_name="default",
        startup_delay=False,
        max_tasks=None,
        worker_id="test",
        excluded_queue_names=[],
    ).run()


@pytest.mark.django_db(transaction=True)
def test_task_enqueued_in_a_rolled_back_transaction_never_runs():
    with pytest.raises(RuntimeError), transaction.atomic():
        record_run.enqueue("lost")
        raise RuntimeError("roll back")
    assert DBTaskResult.objects.count() == 0
    run_worker_batch()
    assert not TaskRun.objects.filter(marker="lost").exists()


@pytest.mark.django_db(transaction=True)
def test_committed_task_runs_once_on_the_worker():
    with transaction.atomic():
        result = record_run.enqueue("kept")
    run_worker_batch()
    run_worker_batch()
    assert TaskRun.objects.filter(marker="kept").count() == 1
    assert DBTaskResult.objects.get(id=result.id).status == "SUCCESSFUL"


@pytest.mark.django_db(transaction=True)
def test_in_process_worker_thread_runs_tasks():
    handle = start_in_process_worker(interval=0.05)
    assert handle is not None
    try:
        assert handle.thread.is_alive()
        assert start_in_process_worker() is None  # one worker per process
        record_run.enqueue("threaded")
        wait_until(
            lambda: TaskRun.objects.filter(marker="threaded").exists(), timeout=10, what="task"
        )
    finally:
        handle.stop()
    assert not handle.thread.is_alive()


@pytest.mark.django_db
@pytest.mark.parametrize("delay", [None, dt.timedelta(hours=2)])
def test_the_backend_writes_the_row_objects_create_writes(delay):
    """``core.tasks.DatabaseBackend`` writes the row itself (``core.db.insert``): every column
    as the package's own backend (``DBTaskResult.objects.create``) stores it, "no time" for
    ``run_after`` included (the package's ``pre_save`` receiver, which ``insert`` does not
    call), and the ``task_enqueued`` signal is sent."""
    from django_tasks.signals import task_enqueued
    from django_tasks_db.backend import DatabaseBackend as PackageBackend

    from core.tasks import DatabaseBackend

    run_after = None if delay is None else timezone.now() + delay
    task = record_run.using(run_after=run_after, priority=7)
    assert isinstance(task.get_backend(), DatabaseBackend)  # the backend of settings.TASKS
    signalled = []
    task_enqueued.connect(receiver := lambda **kw: signalled.append(kw["task_result"].id))
    try:
        ours = task.enqueue(marker="m")
    finally:
        task_enqueued.disconnect(receiver)
    assert signalled == [ours.id]
    theirs: Any = PackageBackend("default", {}).enqueue(task, (), {"marker": "m"})
    columns = [
        f.attname
        for f in DBTaskResult._meta.concrete_fields
        if f.attname not in {"id", "enqueued_at"}
    ]
    ours_row, theirs_row = (
        DBTaskResult.objects.values(*columns).get(id=r.id) for r in (ours, theirs)
    )
    assert ours_row == theirs_row
    assert ours_row["run_after"] == (run_after or get_date_max())
    stored = DBTaskResult.objects.get(id=ours.id)
    assert abs(stored.enqueued_at - timezone.now()) < dt.timedelta(minutes=1)
    assert ours.status == "READY" and ours.args == [] and ours.kwargs == {"marker": "m"}
    assert stored.task.run_after == run_after  # read back as the package reads it
    assert DBTaskResult.objects.ready().filter(id=ours.id).exists() is (delay is None)
