"""The task worker inside the server process outlives a failure of the database: nothing
else would start it again, and every task would wait forever."""

from __future__ import annotations

import logging

import pytest
from django.db import OperationalError
from django_tasks_db.models import DBTaskResultQuerySet

from telemed import worker
from tests.procs import wait_until
from tests.testapp.models import TaskRun
from tests.testapp.tasks import record_run


@pytest.mark.django_db(transaction=True)
def test_the_in_process_worker_runs_again_after_a_database_error(monkeypatch, caplog):
    monkeypatch.setattr(worker, "BACKOFF_FIRST_SECONDS", 0.05)
    polls = 0
    ready = DBTaskResultQuerySet.ready

    def flaky(self: DBTaskResultQuerySet) -> DBTaskResultQuerySet:
        nonlocal polls
        polls += 1
        if polls in (2, 3):  # two failures in a row: the pause doubles
            raise OperationalError("server closed the connection unexpectedly")
        return ready(self)

    monkeypatch.setattr(DBTaskResultQuerySet, "ready", flaky)
    handle = worker.start_in_process_worker(interval=0.05)
    assert handle is not None
    try:
        wait_until(lambda: polls > 3, timeout=10, what="the worker polling again")
        assert handle.thread.is_alive()
        record_run.enqueue("after-the-failure")
        wait_until(
            lambda: TaskRun.objects.filter(marker="after-the-failure").exists(),
            timeout=10,
            what="the task run",
        )
    finally:
        handle.stop()
    assert not handle.thread.is_alive()
    failures = [r for r in caplog.records if r.name == "telemed.worker" and "failed" in r.msg]
    assert [r.getMessage() for r in failures] == [
        "task worker failed (OperationalError); running again in 0.05 s",
        "task worker failed (OperationalError); running again in 0.1 s",
    ]
    assert {r.levelno for r in failures} == {logging.WARNING}


@pytest.mark.django_db(transaction=True)
def test_a_worker_pausing_after_a_failure_stops_at_once(monkeypatch, caplog):
    monkeypatch.setattr(worker, "BACKOFF_FIRST_SECONDS", 30.0)

    def broken(self: DBTaskResultQuerySet) -> DBTaskResultQuerySet:
        raise OperationalError("the database is away")

    monkeypatch.setattr(DBTaskResultQuerySet, "ready", broken)
    handle = worker.start_in_process_worker(interval=0.05)
    assert handle is not None
    wait_until(
        lambda: any("failed" in r.msg for r in caplog.records if r.name == "telemed.worker"),
        timeout=10,
        what="the first failure",
    )
    handle.stop(timeout=5)
    assert not handle.thread.is_alive()
