"""Task rows whose worker died in the middle of them.

A worker that is killed (a deploy, the OOM killer, a lost machine) leaves the task it was
running ``RUNNING`` for good: django-tasks' database backend neither notices nor retries.
:func:`tasks_reclaim` runs every few minutes and, for a task still ``RUNNING`` long after it
started, makes it ``READY`` again if it is safe to run twice (:data:`RERUNNABLE`: it checks,
under a lock, whether its work is still to do: a file's scan, a delivery's claim), or records
it ``FAILED`` otherwise (a housekeeping loop has enqueued its next run before working).
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_tasks import task

from core.tasks import loop_again

# Task paths that may run again after an interruption; registered at the composition root.
RERUNNABLE: set[str] = set()
EVERY = timedelta(minutes=5)
INTERRUPTED = "interrupted: its worker stopped while it ran"


def running_timeout() -> timedelta:
    return timedelta(seconds=int(getattr(settings, "TASK_RUNNING_TIMEOUT_SECONDS", 1800)))


@task()
def tasks_reclaim() -> dict[str, int]:
    """Tasks ``RUNNING`` for longer than ``TASK_RUNNING_TIMEOUT_SECONDS``: run again, or
    recorded failed. Rows another transaction holds are left for the next run."""
    from django_tasks_db.models import DBTaskResult

    loop_again(tasks_reclaim, EVERY)
    now = timezone.now()
    with transaction.atomic():
        stuck = list(
            DBTaskResult.objects.select_for_update(skip_locked=True)
            .filter(status="RUNNING", started_at__lt=now - running_timeout())
            .values_list("id", "task_path")
        )
        again = [pk for pk, path in stuck if path in RERUNNABLE]
        given_up = [pk for pk, path in stuck if path not in RERUNNABLE]
        DBTaskResult.objects.filter(id__in=again).update(status="READY", started_at=None)
        DBTaskResult.objects.filter(id__in=given_up).update(
            status="FAILED",
            finished_at=now,
            exception_class_path="core.reclaim.Interrupted",
            traceback=INTERRUPTED,
        )
    return {"run_again": len(again), "failed": len(given_up)}
