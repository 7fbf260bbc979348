"""Socket authentication: the slot where the identity issue plugs in tickets and JWTs.

Every socket passes through :class:`SocketAuthMiddleware`, which sets ``scope["user"]``.
Until a credential check is wired in, every socket is anonymous and is closed with 4401.
"""

from __future__ import annotations

from typing import Any

from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser


class SocketAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        scope = dict(scope, user=AnonymousUser())
        return await super().__call__(scope, receive, send)
