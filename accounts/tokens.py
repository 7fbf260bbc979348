"""allauth's JWT strategy, plus a role claim and refresh-token reuse detection."""

from __future__ import annotations

from typing import Any

from allauth.headless.tokens.strategies.jwt import internal
from allauth.headless.tokens.strategies.jwt.strategy import JWTTokenStrategy
from django.contrib.auth.base_user import AbstractBaseUser


class TokenStrategy(JWTTokenStrategy):
    def get_claims(self, user: AbstractBaseUser) -> dict[str, Any]:
        return {"role": getattr(user, "role", "")}

    def refresh_token(self, refresh_token: str) -> tuple[str, str] | None:
        result = super().refresh_token(refresh_token)
        if result is None:
            _on_refused_refresh(refresh_token)
        return result


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
