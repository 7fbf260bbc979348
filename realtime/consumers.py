"""The one socket, ``/ws/v1/``.

Authentication happens in :mod:`realtime.auth` before the consumer runs. A refused socket is
accepted and then closed with 4401/4403 so that clients can read the code (a browser cannot
see why an HTTP handshake was refused).
"""

from __future__ import annotations

import json
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.utils import translation

from core.errors import ApplicationError
from realtime.errors import MalformedFrame, UnknownType
from realtime.metrics import OPEN_SOCKETS, SOCKET_CLOSES


def user_group(user_id: Any) -> str:
    """Every socket of a user joins this group, so all of the user's devices get each event."""
    return f"user.{user_id}"


CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403


class GatewayConsumer(AsyncJsonWebsocketConsumer):
    authenticated = False

    async def connect(self) -> None:
        await self.accept()
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        if not user.is_active:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.authenticated = True
        self.language = getattr(user, "language", "en")
        self.group = user_group(user.pk)
        await self.channel_layer.group_add(self.group, self.channel_name)
        OPEN_SOCKETS.inc()

    async def disconnect(self, code: int) -> None:
        if self.authenticated:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            OPEN_SOCKETS.dec()
            SOCKET_CLOSES.labels(str(code)).inc()

    async def event_push(self, event: dict[str, Any]) -> None:
        """A stored event for this user (``realtime.services.publish_on_commit``)."""
        await self.send_json(event["event"])

    async def session_close(self, event: dict[str, Any]) -> None:
        """The account was deactivated or deleted: end this socket now."""
        await self.close(code=int(event.get("code", CLOSE_FORBIDDEN)))

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        if not self.authenticated:
            return
        try:
            content = json.loads(text_data if text_data is not None else (bytes_data or b""))
        except ValueError:
            await self.send_error(MalformedFrame())
            return
        if not isinstance(content, dict):
            await self.send_error(MalformedFrame())
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_error(UnknownType(fields={"type": str(content.get("type", ""))[:64]}))

    async def send_error(self, exc: ApplicationError) -> None:
        with translation.override(self.language):
            body = exc.envelope()
        await self.send_json({"type": "error", **body})
