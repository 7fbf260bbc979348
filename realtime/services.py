"""Writes of the real-time gateway that other apps reach through the composition root."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.utils import timezone, translation

from realtime.consumers import CLOSE_FORBIDDEN, user_group
from realtime.deliveries import deliveries_schedule
from realtime.errors import NotificationNotFound
from realtime.models import EventCounter, Notification
from realtime.unread import unread_adjust_on_commit, unread_forget_on_commit


def publish_on_commit(*, user_ids: Iterable[Any], event: dict[str, Any]) -> None:
    """After the current transaction commits, push ``event`` to every socket of each user.
    Only services call this, and they name the recipients."""
    groups = [user_group(user_id) for user_id in user_ids]

    def send() -> None:
        layer = get_channel_layer()
        for group in groups:
            async_to_sync(layer.group_send)(group, {"type": "event.push", "event": event})

    transaction.on_commit(send)


def next_event_id(user_id: Any) -> int:
    """The user's next event id, in the caller's transaction. The counter row stays locked
    until that transaction ends, so a user's events commit in id order and a rolled-back id
    is given again: a client that has seen event ``n`` has been able to see every earlier one
    (what makes ``resume`` exact)."""
    table = connection.ops.quote_name(EventCounter._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (user_id, last) VALUES (%s, 1) "  # noqa: S608 (our table name)
            f"ON CONFLICT (user_id) DO UPDATE SET last = {table}.last + 1 RETURNING last",
            [user_id],
        )
        return int(cursor.fetchone()[0])


@transaction.atomic(savepoint=False)
def notify(
    *,
    users: Iterable[Any],
    kind: str,
    data: dict[str, Any],
    render: Callable[[Any], tuple[str, str]],
) -> list[Notification]:
    """One stored notification per recipient, its title and body rendered by ``render`` in
    the recipient's language, its deliveries (e-mail, SMS, WhatsApp, by the recipient's
    preferences) enqueued, each pushed to the recipient's sockets after commit.
    Recipients are taken in a fixed order (their counters are locked until commit)."""
    created = []
    for user in sorted(users, key=lambda u: str(u.pk)):
        with translation.override(getattr(user, "language", None) or "en"):
            title, body = render(user)
        notification = Notification.objects.create(
            user=user,
            seq=next_event_id(user.pk),
            kind=kind,
            title=title[:200],
            body=body,
            data=data,
        )
        created.append(notification)
        deliveries_schedule(notification=notification, user=user)
        unread_adjust_on_commit(user_id=user.pk, name="notifications", delta=1)
        publish_on_commit(user_ids=[user.pk], event=notification.event())
    return created


@transaction.atomic
def notification_mark_read(*, user: Any, event_id: int) -> Notification:
    notification = Notification.objects.select_for_update().filter(user=user, seq=event_id).first()
    if notification is None:
        raise NotificationNotFound()
    if notification.read_at is None:
        notification.read_at = timezone.now()
        notification.save(update_fields=["read_at"])
        unread_adjust_on_commit(user_id=user.pk, name="notifications", delta=-1)
    return notification


@transaction.atomic
def notifications_mark_all_read(*, user: Any) -> int:
    updated = Notification.objects.filter(user=user, read_at__isnull=True).update(
        read_at=timezone.now()
    )
    unread_forget_on_commit(user_id=user.pk, name="notifications")
    return updated


def close_user_sockets(*, user_id: Any, code: int = CLOSE_FORBIDDEN) -> None:
    """After the current transaction commits, close every open socket of the user."""

    def send() -> None:
        async_to_sync(get_channel_layer().group_send)(
            user_group(user_id), {"type": "session.close", "code": code}
        )

    transaction.on_commit(send)
