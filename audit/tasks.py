"""The optional MongoDB mirror of the audit trail (PL-8): an off-database copy.

When ``MONGODB_URI`` is set, ``audit.services.record`` enqueues :func:`mirror_event` in the
transaction that writes the event; the task worker copies the event into the
``audit_events`` collection of the URI's database (or ``MONGODB_DB``, default ``telemed``).
The copy is an upsert keyed by the event id, so a task that runs twice writes one document.
Comparing the mirror's ``hash`` per id with the primary shows rows removed from the end of
the chain, which the chain alone cannot.

Tested against ``mongomock`` only: unverified against a live MongoDB server.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import pymongo
from django.conf import settings
from django_tasks import task

from audit.models import AuditEvent

logger = logging.getLogger(__name__)
COLLECTION = "audit_events"


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
def mirror_event(event_id: int) -> None:
    event = AuditEvent.objects.filter(id=event_id).first()
    if event is None:  # cannot happen for a committed enqueue: events are never deleted
        logger.warning("audit event %s to mirror does not exist", event_id)
        return
    collection().replace_one({"_id": event.id}, document(event), upsert=True)
