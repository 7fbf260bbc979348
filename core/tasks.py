"""Helpers for django-tasks loops that reschedule themselves."""

from __future__ import annotations

from typing import Any

# The housekeeping loops of the domain apps (tasks that run, then enqueue their next run),
# wired at the composition root; ``manage.py schedule_housekeeping`` starts each one once.
HOUSEKEEPING_LOOPS: list[Any] = []


def enqueue_unless_waiting(task: Any) -> bool:
    """Enqueue ``task`` unless a run of it is already waiting; True if this call enqueued it
    (idempotent: start-up commands call it on every deploy)."""
    from django_tasks_db.models import DBTaskResult

    waiting = DBTaskResult.objects.filter(task_path=task.module_path, status="READY").exists()
    if not waiting:
        task.enqueue()
    return not waiting


def ensure_housekeeping() -> dict[str, bool]:
    """Start every housekeeping loop that is not waiting already: ``{task path: started}``."""
    return {task.module_path: enqueue_unless_waiting(task) for task in HOUSEKEEPING_LOOPS}
