"""Helpers for django-tasks loops that reschedule themselves."""

from __future__ import annotations

from typing import Any


def enqueue_unless_waiting(task: Any) -> bool:
    """Enqueue ``task`` unless a run of it is already waiting; True if this call enqueued it
    (idempotent: start-up commands call it on every deploy)."""
    from django_tasks_db.models import DBTaskResult

    waiting = DBTaskResult.objects.filter(task_path=task.module_path, status="READY").exists()
    if not waiting:
        task.enqueue()
    return not waiting
