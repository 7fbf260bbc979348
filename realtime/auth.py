"""Socket authentication, before the consumer runs: sets ``scope["user"]``.

Non-browser clients send ``Authorization: Bearer <access token>`` on the handshake; the token
is checked exactly as for REST (allauth's stateful JWT validation: a logged-out session, a
changed password or a deactivated account is refused). Browser tickets (``?ticket=``) plug in
here too. A socket without a valid credential stays anonymous and the gateway closes it 4401.
"""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser


def _bearer(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


@database_sync_to_async
def _user_for_token(token: str) -> Any:
    from accounts.tokens_validation import validate_access_token

    found = validate_access_token(token)
    if found is None:
        return AnonymousUser()
    user = found[0]
    user.pk  # noqa: B018  (load the lazy user inside the thread, not on the event loop)
    return user


class SocketAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        token = _bearer(scope)
        user = await _user_for_token(token) if token else AnonymousUser()
        return await super().__call__(dict(scope, user=user), receive, send)
