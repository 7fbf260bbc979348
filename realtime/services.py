"""Writes of the real-time gateway that other apps reach through the composition root."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from realtime.consumers import CLOSE_FORBIDDEN


def user_group(user_id: Any) -> str:
    """Every socket of a user joins this group, so all of the user's devices get each event."""
    return f"user.{user_id}"


def close_user_sockets(*, user_id: Any, code: int = CLOSE_FORBIDDEN) -> None:
    """After the current transaction commits, close every open socket of the user."""

    def send() -> None:
        async_to_sync(get_channel_layer().group_send)(
            user_group(user_id), {"type": "session.close", "code": code}
        )

    transaction.on_commit(send)
