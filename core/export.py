"""Helpers of the personal-data export (``accounts.selectors.user_export``) that the apps
whose sections it gathers share: each list is bounded and one query whatever its length,
and a list cut at the bound is named in the document's "truncated", never cut silently."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.db import connection
from django.db.models import CharField, Q, QuerySet, Value
from django.db.models.functions import Cast, Concat, Substr

T = TypeVar("T")


def iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class Rows:
    """The export's reads, each bounded, and which of them reached the bound; and the reads
    several parts of one app's export share (:meth:`once`), so each is made once."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.truncated: dict[str, bool] = {}
        self._once: dict[str, Any] = {}

    def take(self, name: str, qs: QuerySet[Any]) -> list[Any]:
        found = list(qs[: self.limit + 1])
        self.truncated[name] = len(found) > self.limit
        return found[: self.limit]

    def once(self, name: str, read: Callable[[], T]) -> T:
        """``read()``, made on the first call of this export with ``name`` (one app's key,
        named after the app) and remembered for the next ones."""
        if name not in self._once:
            self._once[name] = read()
        return self._once[name]  # type: ignore[no-any-return]


def id_texts(qs: QuerySet[Any]) -> QuerySet[Any]:
    """The ids of ``qs`` as text, as the audit trail names its targets (``str(uuid)``): a
    subquery, so the export never sends a list of thousands of ids."""
    if connection.vendor == "postgresql":
        return qs.values(id_text=Cast("pk", CharField()))
    # SQLite stores a UUID as 32 hex digits: put the dashes of str(uuid) back in.
    parts: list[Any] = []
    for start, length in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12)):
        parts += [Value("-"), Substr(Cast("pk", CharField()), start, length)]
    return qs.values(id_text=Concat(*parts[1:], output_field=CharField()))


def no_change(event: Any, data: dict[str, Any]) -> dict[str, Any] | None:
    return data


@dataclass(frozen=True)
class AuditTargets:
    """One app's part of the export's access log (who else did something to the user's
    data): conditions on audit events (``audit.AuditEvent``'s fields), each answered by one
    indexed read, and ``shown``: an event's data as the user may see it, or None to leave the
    event out (it is not about the user's data)."""

    events: list[Q]
    shown: Callable[[Any, dict[str, Any]], dict[str, Any] | None] = no_change
