"""Background work of accounts: deleting what an erased account's stored sessions hold."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone
from django_tasks import task

logger = logging.getLogger(__name__)

SESSIONS_DELETE_ATTEMPTS = 8  # 30 s, 1, 2, 4, 8, 16, 32 min apart: about an hour in all


@task()
def erased_sessions_delete(user_id: str, digests: list[str], attempt: int = 1) -> int | None:
    """Delete the stored sessions that hold an erased account's identifiers, given as keyed
    digests (``services.sessions_holding_delete``); enqueued in the erasure's transaction,
    so it exists exactly when the erasure committed. If it fails (the database or the
    cache away), it runs again later, waiting twice as long each time, up to
    ``SESSIONS_DELETE_ATTEMPTS``; the last failure is raised (the task is recorded failed).
    How many sessions it deleted; None when it is tried again later."""
    from accounts.services import sessions_holding_delete

    try:
        return sessions_holding_delete(digests=digests)
    except Exception as exc:
        log = {"user_id": user_id, "error": type(exc).__name__, "attempt": attempt}
        if attempt >= SESSIONS_DELETE_ATTEMPTS:
            logger.error("erasure: stored sessions not deleted, given up", extra=log)
            raise
        delay = timedelta(seconds=30 * 2 ** (attempt - 1))
        erased_sessions_delete.using(run_after=timezone.now() + delay).enqueue(
            user_id, digests, attempt + 1
        )
        logger.warning("erasure: stored sessions not deleted, retried later", extra=log)
        return None
