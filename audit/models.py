"""The append-only audit trail: one row per security-relevant event, hash-chained.

Each event stores the SHA-256 of its predecessor's hash and of its own content (see
:func:`event_hash`), so that editing, deleting or reordering a row breaks the chain at that
row, and ``manage.py audit_verify`` says where. Removing the *newest* rows cannot be seen
from the chain alone; the optional MongoDB mirror (``audit.tasks``) is the off-database copy
that shows it.

Append-only is enforced twice. Here in Python: an existing row cannot be saved again, and
neither a row nor a queryset can be deleted or bulk-updated. In production the database
role the application connects with should also be denied the rest, for example::

    REVOKE UPDATE, DELETE, TRUNCATE ON audit_auditevent FROM telemed_app;

(migrations then run under a separate owner role). This app is a leaf: it stores the actor
and the target as plain values, never as foreign keys into a domain app.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import uuid
from datetime import UTC, datetime
from typing import Any, NoReturn

from django.db import models
from django.utils import timezone

GENESIS_HASH = "0" * 64
USER_AGENT_MAX = 256


class AppendOnlyError(RuntimeError):
    """An attempt to change or remove an audit event: the trail is append-only."""


def canonical_ip(value: str | None) -> str | None:
    """One spelling per address, whatever the database hands back (``::1.2.3.4`` or ``::102:304``)."""
    if not value:
        return None
    return str(ipaddress.ip_address(value))


def canonical_data(value: Any) -> Any:
    """JSON data as a JSON column gives it back: integral floats become ints.

    PostgreSQL's ``jsonb`` stores ``1e20`` as the number ``100000000000000000000``, which
    reads back as an int; hashing the value as it will be read keeps the chain verifiable.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): canonical_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [canonical_data(v) for v in value]
    return value


def event_hash(
    *,
    prev_hash: str,
    created_at: datetime,
    actor_id: uuid.UUID | None,
    actor_role: str,
    action: str,
    target_type: str,
    target_id: str,
    ip: str | None,
    user_agent: str,
    data: Any,
) -> str:
    """SHA-256 (hex) of the canonical JSON of the event's fields, its predecessor's hash first."""
    payload = [
        prev_hash,
        created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        str(actor_id) if actor_id is not None else None,
        actor_role,
        action,
        target_type,
        target_id,
        canonical_ip(ip),
        user_agent,
        canonical_data(data),
    ]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class AuditEventQuerySet(models.QuerySet["AuditEvent"]):
    """Reads only: every bulk write is refused (appends go through ``audit.services.record``)."""

    def update(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("audit events cannot be updated")

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("audit events cannot be deleted")

    def bulk_update(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("audit events cannot be updated")

    def bulk_create(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("audit events are appended one by one by audit.services.record")


class AuditEvent(models.Model):
    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(default=timezone.now)
    actor_id = models.UUIDField(null=True, blank=True)  # null: anonymous, failed logins
    actor_role = models.CharField(max_length=32, blank=True)
    # Dotted code ("auth.login"); indexed by the (action, created_at) index below.
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=128, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=USER_AGENT_MAX, blank=True)
    data = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["hash"], name="audit_hash_unique"),
            # Two events can never claim the same predecessor, so even a writer that slipped
            # past the chain lock would fail instead of forking the chain.
            models.UniqueConstraint(fields=["prev_hash"], name="audit_prev_hash_unique"),
        ]
        indexes = [
            models.Index(fields=["actor_id", "created_at"], name="audit_actor_created"),
            models.Index(fields=["action", "created_at"], name="audit_action_created"),
            # target_id first: the admin searches by target id alone, and equality on both
            # columns uses the index whatever their order.
            models.Index(fields=["target_id", "target_type"], name="audit_target"),
        ]

    def __str__(self) -> str:
        return f"#{self.id} {self.action} {self.created_at:%Y-%m-%d %H:%M:%S}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("audit events cannot be changed once written")
        kwargs["force_insert"] = True  # never an UPDATE, even with an explicit id
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("audit events cannot be deleted")

    def compute_hash(self) -> str:
        return event_hash(
            prev_hash=self.prev_hash,
            created_at=self.created_at,
            actor_id=self.actor_id,
            actor_role=self.actor_role,
            action=self.action,
            target_type=self.target_type,
            target_id=self.target_id,
            ip=self.ip,
            user_agent=self.user_agent,
            data=self.data,
        )
