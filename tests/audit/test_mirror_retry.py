"""A copy to the MongoDB mirror that fails is tried again later, waiting twice as long each
time, until it lands; the last attempt's failure is logged as an error and raised. Logs name
the event's id, never its content."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from pymongo.errors import AutoReconnect

from audit import tasks
from audit.services import record
from tests.platform.test_tasks import run_worker_batch


class Flaky:
    """The mirror's collection, unreachable for its first ``failures`` writes."""

    def __init__(self, real: Any, failures: int) -> None:
        self.real, self.failures = real, failures

    def replace_one(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise AutoReconnect("mongo.test:27017: connection refused")
        return self.real.replace_one(*args, **kwargs)


def _waiting() -> DBTaskResult:
    (row,) = DBTaskResult.objects.filter(task_path=tasks.mirror_event.module_path, status="READY")
    return row


@pytest.mark.django_db(transaction=True)
def test_a_failed_copy_is_retried_with_a_growing_wait_until_it_lands(mongo, monkeypatch, caplog):
    flaky = Flaky(mongo, failures=2)
    monkeypatch.setattr(tasks, "collection", lambda: flaky)
    event = record(action="record.viewed", target_id="rec-secret", data={"note": "private"})

    waits = []
    with caplog.at_level(logging.WARNING, logger="audit.tasks"):
        for attempt in (1, 2):
            before = timezone.now()
            run_worker_batch()
            retry = _waiting()
            assert retry.args_kwargs["args"] == [event.id, attempt + 1]
            waits.append(retry.run_after - before)
            assert mongo.count_documents({}) == 0
            # The wait has passed.
            DBTaskResult.objects.filter(id=retry.id).update(run_after=timezone.now())
        run_worker_batch()

    assert timedelta(seconds=29) < waits[0] < timedelta(seconds=35)
    assert timedelta(seconds=59) < waits[1] < timedelta(seconds=65)
    assert mongo.find_one({"_id": event.id})["hash"] == event.hash
    assert not DBTaskResult.objects.filter(status__in=["READY", "FAILED"]).exists()
    logged = [r for r in caplog.records if r.name == "audit.tasks"]
    assert [(r.levelname, r.event_id, r.error, r.attempt) for r in logged] == [
        ("WARNING", event.id, "AutoReconnect", 1),
        ("WARNING", event.id, "AutoReconnect", 2),
    ]
    assert "rec-secret" not in caplog.text and "private" not in caplog.text


@pytest.mark.django_db(transaction=True)
def test_the_last_attempt_is_logged_as_an_error_raised_and_not_retried(mongo, monkeypatch, caplog):
    monkeypatch.setattr(tasks, "collection", lambda: Flaky(mongo, failures=1))
    event = record(action="auth.login")
    DBTaskResult.objects.all().delete()  # the first attempt's task: not this test's
    tasks.mirror_event.enqueue(event.id, tasks.MIRROR_ATTEMPTS)

    with caplog.at_level(logging.WARNING, logger="audit.tasks"):
        run_worker_batch()

    (row,) = DBTaskResult.objects.all()
    assert row.status == "FAILED"
    assert row.exception_class_path == "pymongo.errors.AutoReconnect"
    (logged,) = [r for r in caplog.records if r.name == "audit.tasks"]
    assert (logged.levelname, logged.getMessage()) == (
        "ERROR",
        "audit event not mirrored, given up",
    )
    assert (logged.event_id, logged.attempt) == (event.id, tasks.MIRROR_ATTEMPTS)
    assert mongo.count_documents({}) == 0
