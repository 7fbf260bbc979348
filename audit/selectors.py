"""Reads of the audit trail: chain verification and the staff search.

Who may call these (staff with the audit permission) is decided by the caller: the admin
API and the Django admin. The trail itself knows no users.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from audit.models import GENESIS_HASH, AuditEvent

VERIFY_CHUNK = 2000


@dataclass(frozen=True)
class ChainCheck:
    ok: bool
    first_broken_id: int | None
    checked: int
    reason: str = ""


def chain_check() -> ChainCheck:
    """Walk the chain in id order, streaming rows, and stop at the first broken link.

    A row is broken when its ``prev_hash`` is not its predecessor's hash (a row before it was
    deleted, or rows were reordered) or when its content no longer hashes to its ``hash``
    (it was edited). ``checked`` counts the rows read, the broken one included.
    """
    expected_prev = GENESIS_HASH
    checked = 0
    for event in AuditEvent.objects.order_by("id").iterator(chunk_size=VERIFY_CHUNK):
        checked += 1
        if event.prev_hash != expected_prev:
            return ChainCheck(
                False, event.id, checked, "prev_hash does not match the previous event's hash"
            )
        if event.compute_hash() != event.hash:
            return ChainCheck(False, event.id, checked, "content does not match its hash")
        expected_prev = event.hash
    return ChainCheck(True, None, checked)


def verify_chain() -> tuple[bool, int | None, int]:
    """``(ok, first_broken_id, checked)``; see :func:`chain_check`."""
    result = chain_check()
    return result.ok, result.first_broken_id, result.checked


def event_search(
    *,
    actor_id: uuid.UUID | str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """Events matching every given filter, newest first (``-created_at, -id``: a stable key
    for cursor pagination).

    ``action`` ending in a dot is a prefix (``"auth."`` finds every auth event); ``since``
    is inclusive and ``until`` exclusive.
    """
    qs = AuditEvent.objects.all()
    if actor_id is not None:
        qs = qs.filter(actor_id=actor_id)
    if action:
        qs = (
            qs.filter(action__startswith=action)
            if action.endswith(".")
            else qs.filter(action=action)
        )
    if target_type:
        qs = qs.filter(target_type=target_type)
    if target_id:
        qs = qs.filter(target_id=target_id)
    if since is not None:
        qs = qs.filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    return qs.order_by("-created_at", "-id")
