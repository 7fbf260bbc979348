"""The task backend, and helpers for django-tasks loops that reschedule themselves."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django_tasks_db.backend import DatabaseBackend as _DatabaseBackend
from django_tasks_db.compat import normalize_json, task_enqueued

from core import db


class DatabaseBackend(_DatabaseBackend):
    """``django_tasks_db``'s backend (``settings.TASKS``), the task's row written by
    :func:`core.db.insert` (the statement built once) instead of by ``objects.create``, whose
    ORM work was ~4% of a booking's CPU (py-spy; a booking enqueued two tasks then), and the task
    result built once instead of twice. The row is the one ``objects.create`` would write,
    ``run_after`` included: the package's ``pre_save`` receiver stores "no time" as its
    far-future date, which ``insert`` does not call, so it is set here."""

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        result = self._task_to_db_task(task, args, kwargs).task_result
        task_enqueued.send(type(self), task_result=result)
        return result

    def _task_to_db_task(self, task: Any, args: Any, kwargs: Any) -> Any:
        from django_tasks_db.models import DBTaskResult, get_date_max

        row: Any = DBTaskResult(
            id=self._get_id(),
            args_kwargs=normalize_json({"args": args, "kwargs": kwargs}),
            priority=task.priority,
            task_path=task.module_path,
            queue_name=task.queue_name,
            run_after=task.run_after or get_date_max(),
            backend_name=self.alias,
        )
        db.insert(row)
        return row


logger = logging.getLogger(__name__)


def loop_again(task: Any, every: timedelta) -> None:
    """Enqueue the next run of a housekeeping loop, unless one waits already. Called first
    thing in the run, outside any transaction (the task runs in autocommit), so the loop goes
    on whatever becomes of this run: a step that raises, or a worker that dies in the middle
    (its task row stays ``RUNNING`` for good; the next run is already waiting). Two chains of
    one loop (two workers that started it at once) become one at their next runs."""
    enqueue_unless_waiting(task, run_after=timezone.now() + every)
    # The reclaim loop starts again any loop whose chain ended; the other loops do as much
    # for it (its own chain ends as any other's can).
    from core.reclaim import tasks_reclaim

    if task.module_path != tasks_reclaim.module_path:
        enqueue_unless_waiting(tasks_reclaim)


def run_steps(loop: str, steps: dict[str, Callable[[], int]]) -> dict[str, int | None]:
    """Run each step of a housekeeping loop on its own: one that raises is logged and
    answers None, and the steps after it still run (the loop's next run tries it again)."""
    done: dict[str, int | None] = {}
    for name, step in steps.items():
        try:
            done[name] = step()
        except Exception:
            logger.exception("housekeeping step failed", extra={"loop": loop, "step": name})
            done[name] = None
    return done


def at_most_every(name: str, period: timedelta) -> bool:
    """Whether a step that needs doing only once per ``period`` is due in this run of a
    loop that runs more often (one cache key per step; without the cache, always)."""
    from django.core.cache import cache

    from core.cache import best_effort

    added = best_effort(cache.add, f"housekeeping:every:{name}", 1, period.total_seconds())
    return added is not False


PRUNE_EVERY = timedelta(hours=1)  # the task table has no index on finished_at: a scan
PRUNE_BATCH = 1000  # task rows deleted per statement
PRUNE_BATCHES = 10  # statements per call: a backlog is worked off over several calls


def task_results_prune(*, now: datetime) -> int:
    """Delete, in batches, the finished task rows (successful or failed) that finished more
    than ``TASK_RESULT_RETENTION_DAYS`` ago, as django-tasks' ``prune_db_task_results``
    command does (unbatched there); how many. Waiting and running rows are never touched."""
    from django.conf import settings
    from django_tasks_db.models import DBTaskResult

    before = now - timedelta(days=settings.TASK_RESULT_RETENTION_DAYS)
    old = DBTaskResult.objects.finished().filter(finished_at__lte=before).order_by()
    deleted = 0
    for _ in range(PRUNE_BATCHES):
        ids = list(old.values_list("id", flat=True)[:PRUNE_BATCH])
        if ids:
            deleted += DBTaskResult.objects.filter(id__in=ids).delete()[0]
        if len(ids) < PRUNE_BATCH:
            break
    return deleted


# The housekeeping loops of the domain apps (tasks that run, then enqueue their next run),
# wired at the composition root; ``manage.py schedule_housekeeping`` starts each one once.
HOUSEKEEPING_LOOPS: list[Any] = []


def enqueue_unless_waiting(task: Any, *, run_after: datetime | None = None) -> bool:
    """Enqueue ``task`` (at ``run_after``) unless a run of it is already waiting; True if this
    call enqueued it. Idempotent, and safe when two processes ask at once (a transaction
    lock per task on PostgreSQL; SQLite serialises writers): start-up commands call it on
    every deploy, each loop run, and ``tasks_reclaim``, which starts again a loop whose chain
    ended (a run that failed to enqueue its next)."""
    from django.db import connection, transaction
    from django_tasks_db.models import DBTaskResult

    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [task.module_path])
        waiting = DBTaskResult.objects.filter(task_path=task.module_path, status="READY").exists()
        if not waiting:
            (task.using(run_after=run_after) if run_after else task).enqueue()
    return not waiting


def ensure_housekeeping() -> dict[str, bool]:
    """Start every housekeeping loop that is not waiting already: ``{task path: started}``."""
    return {task.module_path: enqueue_unless_waiting(task) for task in HOUSEKEEPING_LOOPS}
