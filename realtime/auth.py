"""Socket authentication, before the consumer runs: sets ``scope["user"]``.

Browsers open ``/ws/v1/?ticket=<one-time ticket>`` (:mod:`realtime.tickets`). Non-browser
clients may instead send ``Authorization: Bearer <access token>`` on the handshake; the token
is checked exactly as for REST (allauth's stateful JWT validation: a logged-out session, a
changed password or a deactivated account is refused). A ticket is checked the same way
against the session it was asked in. A socket without a valid credential stays anonymous and
the gateway closes it 4401. Neither credential is ever logged.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

from allauth.headless.internal.sessionkit import lookup_session
from allauth.headless.tokens.strategies.jwt import internal
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import AnonymousUser
from django.utils.crypto import constant_time_compare

from realtime.tickets import ticket_redeem

logger = logging.getLogger(__name__)


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
def _user_for_token(token: str) -> tuple[Any, str | None]:
    """The token's user and its session's key (checked again while the socket is open: see
    ``realtime.consumers._access_holds``)."""
    from accounts.auth import second_factor_passed, session_of_token
    from accounts.models import STAFF_ROLES
    from accounts.tokens_validation import validate_access_token

    found = validate_access_token(token)
    if found is None:
        return AnonymousUser(), None
    user, snap = found
    if snap.role in STAFF_ROLES and not second_factor_passed(session_of_token(token), snap.id):
        return AnonymousUser(), None  # as on the API: staff pass the second factor first
    user.pk  # noqa: B018  (load the lazy user inside the thread, not on the event loop)
    return user, token_session_key(token)


def token_session_key(token: str) -> str | None:
    """The server-side session an access token belongs to (its ``sid`` claim, decrypted)."""
    payload = internal.decode_token(token, "access")
    sid = payload.get("sid") if payload else None
    return internal.session_key_from_sid(sid) if isinstance(sid, str) else None


def _session_holds(session_key: str, user: Any) -> bool:
    """Whether the session is still the user's signed-in session, as the token checks say:
    it exists (no logout since), it names the user, and it was made with the user's current
    password (no password change since); for staff, it passed the second factor with a
    device the user still has."""
    from accounts.auth import second_factor_passed
    from accounts.models import STAFF_ROLES

    session = lookup_session(session_key)
    if session is None or str(session.get(SESSION_KEY)) != str(user.pk):
        return False
    session_hash = session.get(HASH_SESSION_KEY)
    if not (session_hash and constant_time_compare(session_hash, user.get_session_auth_hash())):
        return False
    return user.role not in STAFF_ROLES or second_factor_passed(session, str(user.pk))


@database_sync_to_async
def _user_for_ticket(ticket: str) -> tuple[Any, str | None]:
    """The ticket's user and the session it was asked in (checked again once the socket
    has joined: see ``realtime.consumers._access_holds``)."""
    try:
        found = ticket_redeem(ticket)
    except Exception as exc:  # Redis away: no ticket can be checked (the socket closes 4401)
        logger.warning("socket ticket not checked (%s)", type(exc).__name__)
        found = None
    if found is None:
        return AnonymousUser(), None
    user_id, session_key = found
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None or not _session_holds(session_key, user):
        return AnonymousUser(), None
    return user, session_key


class SocketAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        ticket, token = _ticket(scope), _bearer(scope)
        session_key = None
        if ticket is not None:
            user, session_key = await _user_for_ticket(ticket)
        elif token:
            user, session_key = await _user_for_token(token)
        else:
            user = AnonymousUser()
        return await super().__call__(
            dict(scope, user=user, session_key=session_key), receive, send
        )
