"""The task worker inside the server process, for the embedded defaults.

With the in-memory channel layer only this process can reach its sockets, so the worker that
sends notifications must live here too. With Redis configured, run ``manage.py db_worker``
as its own process instead (``TASK_WORKER_IN_PROCESS=false``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from django.db import InterfaceError, OperationalError, connections

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_current: InProcessWorker | None = None
# The pause before the worker runs again after a failure: doubled after each failure in a row,
# up to the most; back to the first once a run has lasted longer than the most.
BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MOST_SECONDS = 30.0


@dataclass
class InProcessWorker:
    worker: object
    thread: threading.Thread
    stopping: threading.Event

    def stop(self, timeout: float = 10.0) -> None:
        global _current
        self.worker.running = False  # type: ignore[attr-defined]
        self.stopping.set()
        self.thread.join(timeout)
        with _lock:
            if _current is self:
                _current = None


def _run(worker: object, stopping: threading.Event) -> None:
    """Run the worker until it is stopped. ``Worker.run()`` lets every database error but
    SQLite's "locked" escape (a dropped connection, PostgreSQL restarting, a full pool); here
    nothing else would start it again and tasks would wait forever, so the thread logs the
    failure, hands its connections back and runs it again after a pause that grows while
    failures follow each other."""
    delay = BACKOFF_FIRST_SECONDS
    try:
        while worker.running:  # type: ignore[attr-defined]
            started = time.monotonic()
            try:
                worker.run()  # type: ignore[attr-defined]
            except Exception as exc:
                if time.monotonic() - started > BACKOFF_MOST_SECONDS:
                    delay = BACKOFF_FIRST_SECONDS
                if isinstance(exc, OperationalError | InterfaceError):  # the database's trouble
                    logger.warning(
                        "task worker failed (%s); running again in %g s",
                        type(exc).__name__,
                        delay,
                    )
                else:
                    logger.error("task worker failed; running again in %g s", delay, exc_info=exc)
                connections.close_all()
                stopping.wait(delay)
                delay = min(delay * 2, BACKOFF_MOST_SECONDS)
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
        stopping = threading.Event()
        thread = threading.Thread(
            target=_run, args=(worker, stopping), name="task-worker", daemon=True
        )
        _current = InProcessWorker(worker=worker, thread=thread, stopping=stopping)
        thread.start()
    logger.info("task worker started inside the server process")
    return _current
