"""Reads of the gateway, each for one viewer."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

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
