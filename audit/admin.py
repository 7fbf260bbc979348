"""The audit trail in the Django admin: read-only, filtered by action, searched by target id."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.models import AuditEvent


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
    list_filter = ("action", "actor_role")
    search_fields = ("target_id",)
    search_help_text = "Exact target id"
    readonly_fields = tuple(f.name for f in AuditEvent._meta.fields)
    show_full_result_count = False  # no COUNT(*) over the whole trail on each search

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[AuditEvent], search_term: str
    ) -> tuple[QuerySet[AuditEvent], bool]:
        # Exact match, so the (target_id, target_type) index answers it.
        term = search_term.strip()
        return (queryset.filter(target_id=term) if term else queryset), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
