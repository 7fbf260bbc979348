"""Appending to the audit trail: the only way an :class:`AuditEvent` is written.

``record()`` keeps the hash chain linear under concurrent writers. On PostgreSQL it takes a
transaction-scoped advisory lock before reading the chain's head and inserting; the lock is
released when the *outermost* transaction ends, so a service that records inside its own
transaction should record last, to keep the serialised part short. On SQLite the
``IMMEDIATE`` transaction mode already serialises writers. Under any backend the unique
``prev_hash`` column makes a racing writer fail rather than fork the chain (this is also
what protects a caller that runs at REPEATABLE READ, where the head read could be stale).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connections, router, transaction
from django.http import HttpRequest
from django.utils import timezone

from audit.models import (
    GENESIS_HASH,
    USER_AGENT_MAX,
    AuditEvent,
    canonical_data,
    canonical_ip,
)
from audit.tasks import mirror_event
from core.crypto import encrypt

# A fixed key for pg_advisory_xact_lock: the bytes of "auditlog" as a signed bigint.
CHAIN_LOCK_KEY = int.from_bytes(b"auditlog", "big", signed=True)

ACTION_RE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")
SECRET_KEY_RE = re.compile(r"password|token|secret|code|otp", re.IGNORECASE)
REDACTED = "[redacted]"


def scrub(value: Any) -> Any:
    """Replace the value of every key that names a secret, at any depth, with ``[redacted]``.

    A safety net, not a licence: callers should not pass secrets at all. Over-matching
    (``postcode``) is accepted; a leaked one-time code is not.
    """
    if isinstance(value, dict):
        return {k: REDACTED if SECRET_KEY_RE.search(str(k)) else scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


SEALED_SUFFIX = "_sealed"
SEAL_CONTEXT = "audit.sealed"


def seal(text: str) -> str:
    """Free text that may tell of a patient's health (a break-glass reason), for an audit
    row's ``data`` under a key ending in ``_sealed``: encrypted with the field keys, so the
    append-only trail and its MongoDB mirror, which outlive an erasure, never hold it in
    clear. Only admins read it back (:func:`audit.selectors.unsealed`). The trail is never
    re-encrypted (its rows are chained by hash): a retired field key must stay in
    ``FIELD_ENCRYPTION_KEYS`` as long as the reasons it sealed are to be read."""
    return encrypt(text, context=SEAL_CONTEXT)


def _clean_data(data: dict[str, Any] | None) -> dict[str, Any]:
    """JSON-native (UUIDs, datetimes, decimals as strings), scrubbed and canonical."""
    native = json.loads(json.dumps(data or {}, cls=DjangoJSONEncoder, allow_nan=False))
    if not isinstance(native, dict):
        raise TypeError("audit data must be a JSON object")
    return canonical_data(scrub(native))


def _lock_chain(alias: str) -> None:
    connection = connections[alias]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])


def record(
    *,
    action: str,
    actor_id: uuid.UUID | str | None = None,
    actor_role: str = "",
    target_type: str = "",
    target_id: str = "",
    ip: str | None = None,
    user_agent: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain and, when ``MONGODB_URI`` is set, enqueue its mirror.

    ``action`` is a dotted code (``auth.login``); keys of ``data`` that look like secrets
    (password, token, secret, code, otp) are stored as ``[redacted]``.
    """
    if not ACTION_RE.match(action):
        raise ValueError(f"audit action must be a dotted code, got {action!r}")
    fields: dict[str, Any] = {
        "actor_id": uuid.UUID(str(actor_id)) if actor_id is not None else None,
        "actor_role": actor_role,
        "action": action,
        "target_type": target_type,
        "target_id": str(target_id),
        "ip": canonical_ip(ip),
        "user_agent": user_agent.replace("\x00", "")[:USER_AGENT_MAX],
        "data": _clean_data(data),
    }
    alias = router.db_for_write(AuditEvent)
    with transaction.atomic(using=alias):
        # The locked section: lock, read the head, insert. Nothing slow in between.
        _lock_chain(alias)
        head = AuditEvent.objects.using(alias).order_by("-id").values_list("hash", flat=True)
        event = AuditEvent(created_at=timezone.now(), prev_hash=head.first() or GENESIS_HASH)
        for name, value in fields.items():
            setattr(event, name, value)
        event.hash = event.compute_hash()
        event.save(using=alias)
        if getattr(settings, "MONGODB_URI", ""):
            # Enqueued in this transaction (database task backend): committed with the event.
            mirror_event.enqueue(event.id)
    return event


def client_ip(request: HttpRequest) -> str | None:
    """The client's address: ``REMOTE_ADDR``, or ``X-Forwarded-For`` behind trusted proxies.

    With ``AUDIT_TRUSTED_PROXY_COUNT = n`` the last ``n`` entries of ``X-Forwarded-For`` were
    written by our own proxies, and the ``n``-th from the right is the address the outermost
    one saw. Anything further left is whatever the client claimed, and is ignored.
    """
    candidate = request.META.get("REMOTE_ADDR", "")
    hops = int(getattr(settings, "AUDIT_TRUSTED_PROXY_COUNT", 0) or 0)
    if hops > 0:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        entries = [e.strip() for e in forwarded.split(",") if e.strip()]
        if len(entries) >= hops:
            candidate = entries[-hops]
    try:
        return canonical_ip(candidate)
    except ValueError:
        return None


def record_from_request(
    request: HttpRequest,
    *,
    action: str,
    actor_id: uuid.UUID | str | None = None,
    actor_role: str | None = None,
    target_type: str = "",
    target_id: str = "",
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """``record()`` with ip, user agent and actor taken from the request.

    The actor is ``request.user`` (or a Ninja ``request.auth`` user) when authenticated;
    pass ``actor_id``/``actor_role`` to name it yourself, e.g. at login, before the request
    carries the user.
    """
    if actor_id is None:
        for user in (getattr(request, "user", None), getattr(request, "auth", None)):
            if getattr(user, "is_authenticated", False) is True:
                actor_id = user.id  # type: ignore[union-attr]
                if actor_role is None:
                    actor_role = str(getattr(user, "role", "") or "")
                break
    return record(
        action=action,
        actor_id=actor_id,
        actor_role=actor_role or "",
        target_type=target_type,
        target_id=target_id,
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        data=data,
    )
