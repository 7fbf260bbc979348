"""Reads of the gateway, each for one viewer."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from core.export import Rows, iso
from realtime.deliveries import preferences_for
from realtime.models import Notification


def notifications_of(*, viewer: Any) -> QuerySet[Notification]:
    return Notification.objects.filter(user=viewer)


def events_after(*, user_id: Any, after: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The user's stored events with an id above ``after``, oldest first, at most ``limit``;
    and whether more remain (the client pages the rest over REST)."""
    rows = list(
        Notification.objects.filter(user_id=user_id, seq__gt=after).order_by("seq")[: limit + 1]
    )
    return [n.event() for n in rows[:limit]], len(rows) > limit


def unread_notifications(user_id: Any) -> int:
    """The unread counter's rebuild from the database."""
    return Notification.objects.filter(user_id=user_id, read_at__isnull=True).count()


def export_section(user: Any, rows: Rows) -> dict[str, Any]:
    """The user's notifications and delivery preferences (as their API shows them), for the
    personal-data export (``accounts.selectors.user_export``, wired at the root)."""
    notifications = rows.take(
        "realtime.notifications", Notification.objects.filter(user=user).order_by("seq")
    )
    return {
        "notifications": [
            {
                "id": n.seq,
                "kind": n.kind,
                "title": n.title,
                "body": n.body,
                "data": n.data,
                "created_at": iso(n.created_at),
                "read_at": iso(n.read_at),
            }
            for n in notifications
        ],
        "delivery_preferences": preferences_for(user=user),
    }
