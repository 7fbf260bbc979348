"""allauth's JWT strategy, plus a role claim and refresh-token reuse detection."""

from __future__ import annotations

from typing import Any

from allauth.headless import app_settings
from allauth.headless.tokens.strategies.jwt import internal
from allauth.headless.tokens.strategies.jwt.strategy import JWTTokenStrategy
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.sessions.models import Session
from django.db import router, transaction


class TokenStrategy(JWTTokenStrategy):
    def get_claims(self, user: AbstractBaseUser) -> dict[str, Any]:
        return {"role": getattr(user, "role", "")}

    def refresh_token(self, refresh_token: str) -> tuple[str, str] | None:
        """allauth's refresh with rotation, but one at a time per session. Two refreshes
        with the same token at once (a client that sent it twice) each rotated it from
        their own copy of the session, which then kept only the last one's new token: the
        other's next use looked like a replay, and ended the session. Now each rotates under
        the session's row lock, on the session as it is then; a token that was valid when
        its request read it and was rotated out by a refresh racing it meanwhile still gets
        a new pair (both new tokens stay valid). A token rotated out before its request came
        is a replay (:func:`_on_refused_refresh`)."""
        found = internal.validate_refresh_token(refresh_token)
        if found is None:
            _on_refused_refresh(refresh_token)
            return None
        if not app_settings.JWT_ROTATE_REFRESH_TOKEN:
            return super().refresh_token(refresh_token)
        _user, early, payload = found
        with transaction.atomic(using=router.db_for_write(Session)):
            Session.objects.select_for_update().filter(session_key=early.session_key).exists()
            session = internal.get_token_session(payload)  # as it is now, under the lock
            user = internal.validate_token_user(payload, session) if session is not None else None
            if session is None or user is None:  # signed out or ended meanwhile
                return None
            access_token = internal.create_access_token(user, session, self.get_claims(user))
            internal.invalidate_refresh_token(session, payload)
            next_refresh_token = internal.create_refresh_token(user, session)
            session.save()
        return access_token, next_refresh_token


def _on_refused_refresh(refresh_token: str) -> None:
    """A correctly signed, unexpired refresh token of a live session that is no longer in the
    session's list was rotated out already: someone is replaying it. Treat the whole session
    as stolen (revoke every token of it) and audit the event."""
    from accounts import services

    payload = internal.decode_token(refresh_token, "refresh")
    if payload is None:
        return
    session = internal.get_token_session(payload)
    if session is None or payload["jti"] in internal.get_refresh_token_state(session):
        return
    services.refresh_reuse_detected(user_id=payload["sub"], session=session)
