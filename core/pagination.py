"""Keyset (cursor) pagination: ``{"items": [...], "next": "<opaque cursor>" | null}``.

The cursor is signed, so a forged or edited one is refused with 400 instead of being used;
it is signed for one list (its ``scope``), so a cursor of another list is refused too.
Ordering is by one field descending, ties broken by primary key descending.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.core import signing
from django.core.exceptions import ValidationError
from django.db.models import Model, Q, QuerySet
from django.utils.translation import gettext_lazy as _

from core.errors import ApplicationError

M = TypeVar("M", bound=Model)
_SALT = "core.pagination"


class InvalidCursor(ApplicationError):
    code = "request.invalid_cursor"
    status = 400
    message = _("The page cursor is not valid. Start again from the first page.")


def encode_cursor(values: list[Any], *, scope: str) -> str:
    return signing.dumps(values, salt=f"{_SALT}:{scope}", compress=True)


def decode_cursor(cursor: str, *, scope: str) -> list[Any]:
    """The values of a cursor this server signed for ``scope``; anything else is
    :class:`InvalidCursor`: a forged or edited cursor, one that is not text, or text that is
    not UTF-8 (a lone surrogate, which JSON can carry, cannot be hashed to check it)."""
    if not isinstance(cursor, str):
        raise InvalidCursor()
    try:
        values = signing.loads(cursor, salt=f"{_SALT}:{scope}")
    except (signing.BadSignature, UnicodeError) as exc:
        raise InvalidCursor() from exc
    if not isinstance(values, list) or len(values) != 2:
        raise InvalidCursor()
    return values


def paginate(
    qs: QuerySet[M], *, field: str, cursor: str | None, limit: int, descending: bool = True
) -> tuple[list[M], str | None]:
    """One page of ``qs`` ordered by ``field, pk`` (both descending unless ``descending`` is
    False), and the cursor of the next page."""
    sign, after = ("-", "lt") if descending else ("", "gt")
    qs = qs.order_by(f"{sign}{field}", f"{sign}pk")
    meta = qs.model._meta
    scope = f"{meta.label_lower}.{field}"
    if cursor:
        value, pk = decode_cursor(cursor, scope=scope)
        try:
            value, pk = meta.get_field(field).to_python(value), meta.pk.to_python(pk)  # type: ignore[union-attr]
        except (ValidationError, TypeError, ValueError) as exc:
            raise InvalidCursor() from exc
        qs = qs.filter(Q(**{f"{field}__{after}": value}) | Q(**{field: value, f"pk__{after}": pk}))
    items = list(qs[: limit + 1])
    if len(items) <= limit:
        return items, None
    items = items[:limit]
    last = items[-1]
    value = getattr(last, field)
    return items, encode_cursor(
        [value.isoformat() if hasattr(value, "isoformat") else value, str(last.pk)], scope=scope
    )
