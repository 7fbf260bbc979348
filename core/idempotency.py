"""``Idempotency-Key`` for unsafe requests that create things (DESIGN: Contracts).

The key is scoped to the user and kept 24 h. Within the request's transaction a row for the
key is inserted first: a concurrent duplicate's insert waits on the unique index until the
first transaction ends (PostgreSQL; SQLite serialises writers anyway), then finds the first
answer and returns it. The same key with another body is 422. If the first request failed
(its transaction rolled back), the key is free again and the retry runs afresh.

The body is kept only as a keyed digest (:func:`request_digest`): a body can hold protected
health information (a booking's reason), which a plain hash would let a reader of the table
confirm by guessing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.http import HttpResponse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from django.utils.translation import gettext_lazy as _
from ninja import Header, Schema, Status

from core import db
from core.errors import ApplicationError, InvalidRequest
from core.models import IdempotencyRecord
from core.responses import dumps, json_response

TTL = timedelta(hours=24)
HEADER = "Idempotency-Key"
# Control characters (NUL among them, which PostgreSQL refuses in text: a 500) have no place
# in a key; refused as its length is, before anything is stored.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class IdempotencyMismatch(ApplicationError):
    code = "request.idempotency_mismatch"
    status = 422
    message = _("This Idempotency-Key was already used with a different request.")


def respond_once(
    request: Any, key: str | None, payload: Any, action: Callable[[], tuple[int, Any]]
) -> Status | HttpResponse:
    """:func:`run_once` as an endpoint's answer. A replay is sent as stored, not checked
    against the endpoint's response schema again: it was checked when first made, and a
    release that added a field since would make every retry across the deploy a 500 for the
    key's 24 h, when a retry matters most."""
    status, body, replayed = run_once(user=request.auth, key=key, payload=payload, action=action)
    if replayed:
        return json_response(body, status)
    return Status(status, body)


def run_once(
    *, user: Any, key: str | None, payload: Any, action: Callable[[], tuple[int, Any]]
) -> tuple[int, Any, bool]:
    """Run ``action`` (which returns ``(status, JSON data)``) at most once per key:
    ``(status, body, replayed)``."""
    if not key:
        return (*action(), False)
    if _CONTROL.search(key):
        raise InvalidRequest(
            fields={HEADER: str(_("An Idempotency-Key may not contain control characters."))}
        )
    body = json.dumps(payload, sort_keys=True, default=str)
    digest = request_digest(user, key, body)
    with transaction.atomic():
        record = _claim(user, key, digest)
        if record is None:
            existing = IdempotencyRecord.objects.get(user=user, key=key)
            if not _same_request(existing.request_hash, user, key, body):
                raise IdempotencyMismatch() from None
            return existing.status or 200, existing.body, True
        status, body = action()
        record.status, record.body = status, body
        db.update(record, ["status", "body"])
        return status, record.body, False


# A keyed digest is marked so (``request_hash`` holds 64 characters: the mark and 43 of
# unpadded base64 fit); a digest of 64 hex digits is the unkeyed SHA-256 stored before.
_KEYED = "h1:"
_SALT = "core.idempotency.request_hash"


def request_digest(user: Any, key: str, body: str, secret: str | None = None) -> str:
    """The stored form of a request's ``body``: an HMAC-SHA256 under a key derived from
    ``SECRET_KEY`` (or ``secret``), bound to the user and the Idempotency-Key, so it confirms
    no guess of the body to one who reads the table without the secret."""
    # A key has no control characters (refused before), so NUL separates unambiguously.
    mac = salted_hmac(
        _SALT, f"{getattr(user, 'pk', user)}\x00{key}\x00{body}", secret=secret, algorithm="sha256"
    )
    return _KEYED + base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def _same_request(stored: str, user: Any, key: str, body: str) -> bool:
    """Whether ``stored`` is the digest of this body, under the current secret key or one
    still in ``SECRET_KEY_FALLBACKS`` (a retry across a key rotation)."""
    if not stored.startswith(_KEYED):
        # Legacy: stored before keyed digests, as a plain SHA-256 of the body. Kept so that a
        # retry across that deploy replays instead of being refused; such records expire 24 h
        # (TTL) after it, and this branch can be deleted once the deploy is a day old.
        return constant_time_compare(stored, hashlib.sha256(body.encode()).hexdigest())
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return any(
        constant_time_compare(stored, request_digest(user, key, body, secret)) for secret in secrets
    )


# The header of an endpoint that creates: ``idempotency_key: str | None = IDEMPOTENCY_KEY``.
IDEMPOTENCY_KEY = Header(None, alias=HEADER, max_length=255)


def created_once(
    request: Any,
    key: str | None,
    body: Any,
    make: Callable[[], Any],
    out: type[Schema],
) -> Status | HttpResponse:
    """201 with what ``make()`` made, at most once per ``Idempotency-Key``: the same caller's
    retry with the same key, path and ``body`` (the validated payload) gets the same answer.
    ``out`` is the schema the made object is shown with (:func:`rendered`). The stored answer
    is encrypted (``IdempotencyRecord.body``), so it may hold a one-time secret that a retry
    must get again."""

    def action() -> tuple[int, Any]:
        return 201, rendered(out, make())

    if isinstance(body, Schema):
        body = body.model_dump(mode="json")
    return respond_once(request, key, {"path": request.path, "body": body}, action)


def rendered(schema: type[Schema], data: Any) -> Any:
    """``data`` shown with ``schema`` as JSON data, exactly as the endpoint sends it (Ninja's
    encoder: datetimes to the millisecond), so that a replay sent as stored is the same."""
    return json.loads(dumps(schema.model_validate(data, from_attributes=True).model_dump()))


def _claim(user: Any, key: str, digest: str) -> IdempotencyRecord | None:
    """Claim the key (one statement, no savepoint: a concurrent claim of the same key is
    waited for, then this one is refused if that transaction committed): the new record, or
    None if the key is taken. A record past its 24 h is deleted when its key comes back, or
    by :func:`purge_expired`."""
    record = IdempotencyRecord(user=user, key=key, request_hash=digest)
    if db.insert(record, ignore_conflicts=True):
        return record
    IdempotencyRecord.objects.filter(
        user=user, key=key, created_at__lt=timezone.now() - TTL
    ).delete()
    # Tried again even if this deleted nothing: the housekeeping purge may have deleted the
    # expired record in between (the key is free, and no record would be found).
    return record if db.insert(record, ignore_conflicts=True) else None


def purge_expired() -> int:
    """Delete the records past their 24 h (run by the periodic housekeeping task)."""
    return IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - TTL).delete()[0]
