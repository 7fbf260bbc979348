"""The task worker inside the server process, for the embedded defaults.

With the in-memory channel layer only this process can reach its sockets, so the worker that
sends notifications must live here too. With Redis configured, run ``manage.py db_worker``
as its own process instead (``TASK_WORKER_IN_PROCESS=false``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from django.db import connections

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_current: InProcessWorker | None = None


@dataclass
class InProcessWorker:
    worker: object
    thread: threading.Thread

    def stop(self, timeout: float = 10.0) -> None:
        global _current
        self.worker.running = False  # type: ignore[attr-defined]
        self.thread.join(timeout)
        with _lock:
            if _current is self:
                _current = None


def _run(worker: object) -> None:
    try:
        worker.run()  # type: ignore[attr-defined]
    finally:
        connections.close_all()


def start_in_process_worker(*, interval: float = 0.5) -> InProcessWorker | None:
    """Start the worker thread once per process; ``None`` if it is already running."""
    global _current
    from django_tasks import DEFAULT_TASK_BACKEND_ALIAS
    from django_tasks_db.management.commands.db_worker import Worker

    with _lock:
        if _current is not None:
            return None
        worker = Worker(
            queue_names=["*"],
            interval=interval,
            batch=False,
            backend_name=DEFAULT_TASK_BACKEND_ALIAS,
            startup_delay=False,
            max_tasks=None,
            worker_id="in-process",
            excluded_queue_names=[],
        )
        thread = threading.Thread(target=_run, args=(worker,), name="task-worker", daemon=True)
        _current = InProcessWorker(worker=worker, thread=thread)
        thread.start()
    logger.info("task worker started inside the server process")
    return _current
