"""Socket authentication, before the consumer runs: sets ``scope["user"]``.

Browsers open ``/ws/v1/?ticket=<one-time ticket>`` (:mod:`realtime.tickets`). Non-browser
clients may instead send ``Authorization: Bearer <access token>`` on the handshake; the token
is checked exactly as for REST (allauth's stateful JWT validation: a logged-out session, a
changed password or a deactivated account is refused). A socket without a valid credential
stays anonymous and the gateway closes it 4401. Neither credential is ever logged.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser

from realtime.tickets import ticket_redeem


def _bearer(scope: dict[str, Any]) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


def _ticket(scope: dict[str, Any]) -> str | None:
    query = scope.get("query_string", b"").decode("latin1")
    values = parse_qs(query).get("ticket")
    return values[0] if values else None


@database_sync_to_async
def _user_for_token(token: str) -> Any:
    from accounts.tokens_validation import validate_access_token

    found = validate_access_token(token)
    if found is None:
        return AnonymousUser()
    user = found[0]
    user.pk  # noqa: B018  (load the lazy user inside the thread, not on the event loop)
    return user


@database_sync_to_async
def _user_for_ticket(ticket: str) -> Any:
    user_id = ticket_redeem(ticket)
    user = get_user_model().objects.filter(pk=user_id).first() if user_id else None
    return user or AnonymousUser()


class SocketAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        ticket, token = _ticket(scope), _bearer(scope)
        if ticket is not None:
            user = await _user_for_ticket(ticket)
        elif token:
            user = await _user_for_token(token)
        else:
            user = AnonymousUser()
        return await super().__call__(dict(scope, user=user), receive, send)
