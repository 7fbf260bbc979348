"""The audit trail in the Django admin: read-only, filtered by action and role, searched by
target id.

The list stays cheap on a trail of millions of rows: it is counted exactly only up to
``AuditEventPaginator.exact_up_to`` rows (beyond that, the unfiltered list takes
PostgreSQL's estimate of the table's size and a filtered one stops counting), and its
filters offer known choices (the roles) or ones read from the action index, never a
``SELECT DISTINCT`` over the table.
"""

from __future__ import annotations

import json
from typing import Any, cast

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

from accounts.models import Role
from accounts.permissions import may_read_sealed
from audit.models import AuditEvent
from audit.selectors import unsealed

ACTION_CHOICES_MAX = 200
NO_ROLE = "-"


class AuditEventPaginator(Paginator):
    """Counts the first ``exact_up_to + 1`` ids only. More than that: the unfiltered list on
    PostgreSQL is as long as the planner's estimate (``pg_class.reltuples``, refreshed by
    autovacuum's ANALYZE, so a little behind the newest events), the rest as long as what
    was counted. The oldest pages may then be out of the links' reach: filter to see them."""

    exact_up_to = 10_000

    @cached_property
    def count(self) -> int:
        queryset = cast("QuerySet[Any]", self.object_list)
        counted = queryset.order_by().values("pk")[: self.exact_up_to + 1].count()
        if counted <= self.exact_up_to or queryset.query.where:
            return int(counted)
        connection = connections[queryset.db]
        if connection.vendor != "postgresql":
            return int(queryset.count())  # SQLite: a development database, counted exactly
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                [queryset.model._meta.db_table],
            )
            row = cursor.fetchone()
        return max(int(row[0]) if row else 0, counted)  # -1: never analysed yet


class ActionFilter(admin.SimpleListFilter):
    """The actions recorded so far, read from the (action, created_at) index one value at a
    time (a loose index scan: one probe per action, not a pass over every row)."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        connection = connections[model_admin.model.objects.db]
        table = connection.ops.quote_name(AuditEvent._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH RECURSIVE actions(action) AS ("  # noqa: S608 (the model's own table)
                f" SELECT MIN(action) FROM {table}"
                f" UNION ALL"
                f" SELECT (SELECT MIN(e.action) FROM {table} e WHERE e.action > a.action)"
                f" FROM actions a WHERE a.action IS NOT NULL"
                f") SELECT action FROM actions WHERE action IS NOT NULL LIMIT %s",
                [ACTION_CHOICES_MAX],
            )
            return [(action, action) for (action,) in cursor.fetchall()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(action=value) if value else queryset


class ActorRoleFilter(admin.SimpleListFilter):
    """The accounts' roles, and none (anonymous events such as failed logins)."""

    title = "actor role"
    parameter_name = "actor_role"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [*Role.choices, (NO_ROLE, "none")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(actor_role="" if value == NO_ROLE else value)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin[AuditEvent]):
    list_display = (
        "id",
        "created_at",
        "action",
        "actor_id",
        "actor_role",
        "target_type",
        "target_id",
        "ip",
    )
    ordering = ("-id",)
    sortable_by = ("id",)  # the only indexed order: sorting millions of rows by another is slow
    list_filter = (ActionFilter, ActorRoleFilter)
    search_fields = ("target_id",)
    search_help_text = "Exact target id"
    # ``data`` as staff may see it: sealed values (break-glass reasons) read back for admins.
    fields = readonly_fields = tuple(
        "shown_data" if f.name == "data" else f.name for f in AuditEvent._meta.fields
    )
    paginator = AuditEventPaginator
    show_full_result_count = False  # no COUNT(*) of the unfiltered trail beside a search

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[AuditEvent], search_term: str
    ) -> tuple[QuerySet[AuditEvent], bool]:
        # Exact match, so the (target_id, target_type) index answers it.
        term = search_term.strip()
        return (queryset.filter(target_id=term) if term else queryset), False

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        """The event with its ``data`` as this viewer may see it (the admin is shared by
        every request: what the viewer may see travels with the object, never on it)."""
        event = super().get_object(request, object_id, from_field)
        if event is not None:
            reveal = may_read_sealed(request.user)
            cast(Any, event).shown = unsealed(event.data, reveal=reveal)
        return event

    @admin.display(description="data")
    def shown_data(self, obj: AuditEvent) -> str:
        return json.dumps(getattr(obj, "shown", {}), ensure_ascii=False, sort_keys=True)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
