"""Codes texted by the task worker (``accounts.tasks.sms_code_send``): run what waits, as the
worker would, then read what was sent."""

from __future__ import annotations

from typing import Any

from django_tasks_db.models import DBTaskResult

from accounts.tasks import sms_code_send
from core import sms

PATH = sms_code_send.module_path


def waiting() -> Any:
    return DBTaskResult.objects.filter(task_path=PATH, status="READY").order_by("enqueued_at")


def run_waiting() -> list[str]:
    """Run each code SMS task that is due once (a retry waits for its time); what each
    answered."""
    answers = []
    for row in DBTaskResult.objects.filter(task_path=PATH).ready().order_by("enqueued_at"):
        DBTaskResult.objects.filter(id=row.id).update(status="SUCCESSFUL")
        call = row.args_kwargs
        answers.append(sms_code_send.call(*call["args"], **call["kwargs"]))
    return answers


def sent_sms() -> list[sms.SentMessage]:
    """The captured outbox, once the codes waiting to be texted are."""
    run_waiting()
    return sms.outbox
