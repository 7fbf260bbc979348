"""Writes of the real-time gateway that other apps reach through the composition root."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.utils import translation

from realtime.consumers import CLOSE_FORBIDDEN, user_group
from realtime.models import Notification


def publish_on_commit(*, user_ids: Iterable[Any], event: dict[str, Any]) -> None:
    """After the current transaction commits, push ``event`` to every socket of each user.
    Only services call this, and they name the recipients."""
    groups = [user_group(user_id) for user_id in user_ids]

    def send() -> None:
        layer = get_channel_layer()
        for group in groups:
            async_to_sync(layer.group_send)(group, {"type": "event.push", "event": event})

    transaction.on_commit(send)


def notify(
    *,
    users: Iterable[Any],
    kind: str,
    data: dict[str, Any],
    render: Callable[[Any], tuple[str, str]],
) -> list[Notification]:
    """One stored notification per recipient, its title and body rendered by ``render`` in
    the recipient's language, each pushed to the recipient's sockets after commit."""
    created = []
    for user in users:
        with translation.override(getattr(user, "language", None) or "en"):
            title, body = render(user)
        notification = Notification.objects.create(
            user=user, kind=kind, title=title, body=body, data=data
        )
        created.append(notification)
        publish_on_commit(
            user_ids=[user.pk],
            event={
                "type": kind,
                "id": notification.id,
                "data": {**data, "title": title, "body": body},
            },
        )
    return created


def close_user_sockets(*, user_id: Any, code: int = CLOSE_FORBIDDEN) -> None:
    """After the current transaction commits, close every open socket of the user."""

    def send() -> None:
        async_to_sync(get_channel_layer().group_send)(
            user_group(user_id), {"type": "session.close", "code": code}
        )

    transaction.on_commit(send)
