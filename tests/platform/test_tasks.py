import pytest
from django.db import transaction
from django_tasks_db.models import DBTaskResult

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
