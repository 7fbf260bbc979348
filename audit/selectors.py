"""Reads of the audit trail: chain verification, the comparison with the MongoDB mirror
and the staff search.

Who may call these (staff with the audit permission) is decided by the caller: the admin
API and the Django admin. The trail itself knows no users.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from audit import tasks
from audit.models import GENESIS_HASH, AuditEvent
from audit.services import SEAL_CONTEXT, SEALED_SUFFIX
from core.crypto import DecryptionError, decrypt

VERIFY_CHUNK = 2000
MIRROR_CHUNK = 2000


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


@dataclass(frozen=True)
class MirrorCheck:
    """The primary against the mirror. ``ok`` is False when the mirror holds an event the
    primary lacks or holds with another hash (``first_broken_id``, ``broken``: how many);
    events of the primary not (yet) in the mirror are ``missing``, which alone is no fault:
    the mirror is written by the task worker, after the event."""

    ok: bool
    first_broken_id: int | None
    broken: int
    reason: str
    matched: int
    missing: int
    first_missing_id: int | None


def _primary_pairs(chunk: int) -> Iterator[tuple[int, str]]:
    last = 0  # ids start at 1
    while True:
        rows = list(
            AuditEvent.objects.filter(id__gt=last).order_by("id").values_list("id", "hash")[:chunk]
        )
        yield from rows
        if len(rows) < chunk:
            return
        last = rows[-1][0]


def _mirror_pairs(mirror: Any, upto: int, chunk: int) -> Iterator[tuple[int, str]]:
    last = 0
    while True:
        docs = list(
            mirror.find({"_id": {"$gt": last, "$lte": upto}}, {"hash": 1})
            .sort("_id", 1)
            .limit(chunk)
        )
        yield from ((doc["_id"], doc.get("hash", "")) for doc in docs)
        if len(docs) < chunk:
            return
        last = docs[-1]["_id"]


MATCHED, MISSING, NOT_IN_PRIMARY, HASH_DIFFERS = (
    "matched",
    "missing",
    "in the mirror but not in the primary",
    "the primary's hash differs from the mirror's",
)


def _merge(
    primary: Iterator[tuple[int, str]], copies: Iterator[tuple[int, str]]
) -> Iterator[tuple[str, int]]:
    """``(outcome, id)`` for each id of either stream, both in ascending id order."""
    p, m = next(primary, None), next(copies, None)
    while p is not None or m is not None:
        if p is not None and (m is None or p[0] < m[0]):
            yield MISSING, p[0]
            p = next(primary, None)
        elif m is not None and (p is None or m[0] < p[0]):
            yield NOT_IN_PRIMARY, m[0]
            m = next(copies, None)
        elif p is not None and m is not None:  # the same id
            yield (MATCHED if p[1] == m[1] else HASH_DIFFERS), p[0]
            p, m = next(primary, None), next(copies, None)


def mirror_check(
    *,
    on_missing: Callable[[list[int]], None] | None = None,
    chunk: int = MIRROR_CHUNK,
) -> MirrorCheck:
    """Compare the primary with the MongoDB mirror by id and hash, both read in id order,
    ``chunk`` rows at a time (keyset pages: no long-lived cursor, nothing held in memory).

    Only mirror documents up to the mirror's highest id *at the start* are compared: each of
    them was copied from a committed event, so the primary must hold it, whereas an event
    recorded and copied during the walk might be read from the mirror but not the primary.
    ``on_missing`` is called with each batch of ids the mirror lacks (to enqueue copies).
    Raises ``RuntimeError`` without ``MONGODB_URI``, and pymongo's errors when unreachable.
    """
    mirror = tasks.collection()
    newest = mirror.find_one({}, {"_id": 1}, sort=[("_id", -1)])
    outcomes = _merge(
        _primary_pairs(chunk), _mirror_pairs(mirror, newest["_id"] if newest else 0, chunk)
    )
    counts = dict.fromkeys((MATCHED, MISSING, NOT_IN_PRIMARY, HASH_DIFFERS), 0)
    first: dict[str, int] = {}
    broken: tuple[int, str] | None = None
    pending: list[int] = []
    for outcome, event_id in outcomes:
        counts[outcome] += 1
        first.setdefault(outcome, event_id)
        if outcome in (NOT_IN_PRIMARY, HASH_DIFFERS) and broken is None:
            broken = (event_id, outcome)
        if outcome == MISSING and on_missing is not None:
            pending.append(event_id)
            if len(pending) >= chunk:
                on_missing(pending)
                pending = []
    if pending and on_missing is not None:
        on_missing(pending)
    return MirrorCheck(
        ok=broken is None,
        first_broken_id=broken[0] if broken else None,
        broken=counts[NOT_IN_PRIMARY] + counts[HASH_DIFFERS],
        reason=broken[1] if broken else "",
        matched=counts[MATCHED],
        missing=counts[MISSING],
        first_missing_id=first.get(MISSING),
    )


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


def unsealed(data: dict[str, Any], *, reveal: bool) -> dict[str, Any]:
    """An event's ``data`` as shown to staff: each sealed value (:func:`audit.services.seal`)
    under its plain name, read back for those who may (``reveal``: admins), else
    ``[sealed]``; a value sealed with a key no longer in the ring is ``[unreadable]``."""
    shown: dict[str, Any] = {}
    for key, value in data.items():
        if not (key.endswith(SEALED_SUFFIX) and isinstance(value, str)):
            shown[key] = value
            continue
        name = key.removesuffix(SEALED_SUFFIX)
        if not reveal:
            shown[name] = "[sealed]"
            continue
        try:
            shown[name] = decrypt(value, context=SEAL_CONTEXT)
        except DecryptionError:
            shown[name] = "[unreadable]"
    return shown
