"""Task rows whose worker died in the middle of them.

A worker that is killed (a deploy, the OOM killer, a lost machine) leaves the task it was
running ``RUNNING`` for good: django-tasks' database backend neither notices nor retries.
:func:`tasks_reclaim` runs every few minutes and, for a task still ``RUNNING`` long after it
started, makes it ``READY`` again if it is safe to run twice (:data:`RERUNNABLE`: it checks,
under a lock, whether its work is still to do: a file's scan, a delivery's claim), or records
it ``FAILED`` otherwise (a housekeeping loop has enqueued its next run before working), or
after ``MAX_RUNS`` runs; a task path may register a hook in :data:`GIVEN_UP` that then
settles what the task was for (a file whose scan keeps killing its worker is refused, not
left waiting for ever). A worker that is only slow may see its task run again beside it:
the rerunnable tasks check under a lock, so the work is still done once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_tasks import task

from core.sessions import sessions_prune
from core.tasks import PRUNE_EVERY, at_most_every, ensure_housekeeping, loop_again, run_steps

# Task paths that may run again after an interruption; registered at the composition root.
RERUNNABLE: set[str] = set()
# Task path -> called with the task's arguments when it is recorded failed here, in the same
# transaction; registered by the app that owns the task.
GIVEN_UP: dict[str, Callable[..., Any]] = {}
EVERY = timedelta(minutes=5)
INTERRUPTED = "interrupted: its worker stopped while it ran"


MAX_RUNS = 3  # a task that took its worker down this often (a scan out of memory) is failed

logger = logging.getLogger(__name__)


def running_timeout() -> timedelta:
    return timedelta(seconds=settings.TASK_RUNNING_TIMEOUT_SECONDS)


@task()
def tasks_reclaim() -> dict[str, int]:
    """Tasks ``RUNNING`` for longer than ``TASK_RUNNING_TIMEOUT_SECONDS``: run again, or
    recorded failed. Rows another transaction holds are left for the next run. Also, at most
    hourly, expired sessions are deleted."""
    from django_tasks_db.models import DBTaskResult

    loop_again(tasks_reclaim, EVERY)
    now = timezone.now()
    with transaction.atomic():
        stuck = list(
            DBTaskResult.objects.select_for_update(skip_locked=True)
            .filter(status="RUNNING", started_at__lt=now - running_timeout())
            .values_list("id", "task_path", "worker_ids", "args_kwargs")
        )
        again = [pk for pk, path, ran, _ in stuck if path in RERUNNABLE and len(ran) < MAX_RUNS]
        given_up = [
            pk for pk, path, _, call in stuck if pk not in again and _settled(pk, path, call)
        ]
        DBTaskResult.objects.filter(id__in=again).update(status="READY", started_at=None)
        DBTaskResult.objects.filter(id__in=given_up).update(
            status="FAILED",
            finished_at=now,
            exception_class_path="core.reclaim.Interrupted",
            traceback=INTERRUPTED,
        )
    # A loop whose chain ended (its run could not enqueue the next) starts again.
    restarted = sum(ensure_housekeeping().values())
    _prune_sessions(now)
    return {"run_again": len(again), "failed": len(given_up), "loops_restarted": restarted}


def _prune_sessions(now: datetime) -> None:
    """Expired sessions, at most hourly (nothing else deletes them; this is core's one loop).
    A failure is logged and left to a later run."""
    done = run_steps(
        "reclaim",
        {
            "sessions_deleted": lambda: (
                sessions_prune(now=now) if at_most_every("sessions", PRUNE_EVERY) else 0
            )
        },
    )
    if done["sessions_deleted"]:
        logger.info("expired sessions deleted", extra={"count": done["sessions_deleted"]})


def _settled(pk: Any, path: str, call: dict[str, Any]) -> bool:
    """Run the task's :data:`GIVEN_UP` hook (in a savepoint): False if it raised, and the
    task is left ``RUNNING`` for the next run to try again."""
    hook = GIVEN_UP.get(path)
    if hook is None:
        return True
    try:
        with transaction.atomic():
            hook(*call.get("args", []), **call.get("kwargs", {}))
    except Exception:
        logger.exception("given-up hook failed, tried again later", extra={"task": str(pk)})
        return False
    return True
