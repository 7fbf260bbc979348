"""Background work of accounts: deleting what an erased account's stored sessions hold, and
texting one-time codes."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from django.utils import timezone
from django_tasks import task

from core import crypto, sms

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


# --- one-time codes by SMS ------------------------------------------------------------------
SMS_CODE_CONTEXT = "accounts.tasks.sms_code_send"  # bound into the sealed message
SMS_CODE_ATTEMPTS = 3  # 10 s, then 30 s apart: a login code lives minutes
SMS_CODE_RETRY_SECONDS = (10, 30)


def sms_code_enqueue(*, to: str, body: str) -> None:
    """Text ``body`` to ``to`` from the task worker, off the request: whether a number is an
    account's then shows neither in how long the request takes nor in how it ends when the
    provider fails. The number and the code travel sealed (``core.crypto``): the task's row
    is kept for days after it ran. An empty ``body`` is a message that is not sent, enqueued
    where no code goes (a number that is nobody's) so that the request does the same work."""
    sealed = crypto.encrypt(json.dumps({"to": to, "body": body}), context=SMS_CODE_CONTEXT)
    sms_code_send.enqueue(sealed)


# Codes live minutes: the worker takes them before any other waiting task (scans, deliveries,
# housekeeping), whatever was enqueued first.
SMS_CODE_PRIORITY = 50


@task(priority=SMS_CODE_PRIORITY)
def sms_code_send(sealed: str, attempt: int = 1) -> str:
    """Send a message of :func:`sms_code_enqueue`. A message the provider did not take is
    tried again, up to ``SMS_CODE_ATTEMPTS``; one it may have taken (``SmsOutcomeUnknown``)
    never is: a code texted twice costs twice. Logs name neither the number nor the text."""
    message = json.loads(crypto.decrypt(sealed, context=SMS_CODE_CONTEXT))
    if not message["body"]:
        return "nothing to send"
    log = {"error": "", "attempt": attempt}
    try:
        sms.send(to=message["to"], body=message["body"])
    except sms.SmsOutcomeUnknown as exc:
        log["error"] = type(exc).__name__
        logger.warning("code SMS may not have been sent, not sent again", extra=log)
        return "unknown"
    except sms.SmsError as exc:
        log["error"] = type(exc).__name__
        if attempt >= SMS_CODE_ATTEMPTS:
            logger.error("code SMS not sent, given up", extra=log)
            return "failed"
        delay = timedelta(seconds=SMS_CODE_RETRY_SECONDS[attempt - 1])
        sms_code_send.using(run_after=timezone.now() + delay).enqueue(sealed, attempt + 1)
        logger.warning("code SMS not sent, tried again later", extra=log)
        return "retry"
    return "sent"
