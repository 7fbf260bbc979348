"""The optional MongoDB mirror of the audit trail (PL-8): an off-database copy.

When ``MONGODB_URI`` is set, ``audit.services.record`` enqueues :func:`mirror_event` in the
transaction that writes the event; the task worker copies the event into the
``audit_events`` collection of the URI's database (or ``MONGODB_DB``, default ``telemed``).
The copy is an upsert keyed by the event id, so a task that runs twice writes one document.
A copy that fails (MongoDB away) is tried again later, waiting twice as long each time, up to
``MIRROR_ATTEMPTS``; after the last, ``manage.py audit_verify --repair-mirror`` enqueues it
again. Comparing the mirror's ``hash`` per id with the primary (``audit_verify``, through
``audit.selectors.mirror_check``) shows rows removed from the end of the chain, which the
chain alone cannot.

Tested against ``mongomock`` only: unverified against a live MongoDB server.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import lru_cache
from typing import Any

import pymongo
from django.conf import settings
from django.utils import timezone
from django_tasks import task
from pymongo.errors import PyMongoError

from audit.models import AuditEvent

logger = logging.getLogger(__name__)
COLLECTION = "audit_events"
MIRROR_ATTEMPTS = 8  # 30 s, 1, 2, 4, 8, 16, 32 min apart: about an hour in all


@lru_cache(maxsize=2)
def _client(uri: str) -> Any:
    # One client per process (it pools and is thread-safe); resolved through the module
    # attribute at call time so that tests can patch pymongo.MongoClient.
    return pymongo.MongoClient(uri, tz_aware=True, serverSelectionTimeoutMS=5000)


def collection() -> Any:
    uri = getattr(settings, "MONGODB_URI", "")
    if not uri:
        raise RuntimeError("MONGODB_URI is not set")
    database = _client(uri).get_default_database(default=getattr(settings, "MONGODB_DB", "telemed"))
    return database[COLLECTION]


def document(event: AuditEvent) -> dict[str, Any]:
    """The mirror's copy; ``created_at_iso`` keeps the microseconds a BSON date drops."""
    return {
        "_id": event.id,
        "created_at": event.created_at,
        "created_at_iso": event.created_at.isoformat(timespec="microseconds"),
        "actor_id": str(event.actor_id) if event.actor_id else None,
        "actor_role": event.actor_role,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "data": event.data,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


@task()
def mirror_event(event_id: int, attempt: int = 1) -> bool | None:
    """Copy one event into the mirror. True when copied; False when the event does not exist;
    None when MongoDB failed and the copy is tried again later. The last failure is logged as an error and raised (the task
    is recorded failed). Logs name the event's id, never its content."""
    event = AuditEvent.objects.filter(id=event_id).first()
    if event is None:  # cannot happen for a committed enqueue: events are never deleted
        logger.warning("audit event %s to mirror does not exist", event_id)
        return False
    try:
        collection().replace_one({"_id": event.id}, document(event), upsert=True)
    except PyMongoError as exc:
        log = {"event_id": event_id, "error": type(exc).__name__, "attempt": attempt}
        if attempt >= MIRROR_ATTEMPTS:
            logger.error("audit event not mirrored, given up", extra=log)
            raise
        delay = timedelta(seconds=30 * 2 ** (attempt - 1))
        mirror_event.using(run_after=timezone.now() + delay).enqueue(event_id, attempt + 1)
        logger.warning("audit event not mirrored, tried again later", extra=log)
        return None
    return True
