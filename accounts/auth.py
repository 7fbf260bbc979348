"""Bearer-token authentication for Ninja endpoints (a thin wrapper of allauth's).

allauth's ``JWTTokenAuth`` declares an ``apiKey`` scheme with no name, which is not valid
OpenAPI; this declares HTTP bearer. Tokens are validated statefully (see settings): a token
of a logged-out session, a changed password or a deactivated user is refused at once.
"""

from __future__ import annotations

from typing import Any

from allauth.headless.contrib.ninja.security import JWTTokenAuth
from django.http import HttpRequest
from django.utils import translation

from accounts.errors import PasswordChangeRequired
from accounts.models import User


class AuthedRequest(HttpRequest):
    """The request type of endpoints behind :data:`jwt_auth`: ``request.auth`` is the user."""

    auth: User


class JWTAuth(JWTTokenAuth):
    openapi_type = "http"
    openapi_scheme = "bearer"
    openapi_bearerFormat = "JWT"

    def __init__(self, *, allow_pending_password_change: bool = False) -> None:
        super().__init__()
        self.allow_pending_password_change = allow_pending_password_change

    def __call__(self, request: HttpRequest) -> Any:
        payload = super().__call__(request)
        if payload is None:
            return None
        user = request.user
        if not user.is_active:
            return None
        if user.must_change_password and not self.allow_pending_password_change:  # type: ignore[union-attr]
            raise PasswordChangeRequired()
        if "HTTP_ACCEPT_LANGUAGE" not in request.META:
            # No language asked for: answer in the user's saved language.
            translation.activate(user.language)  # type: ignore[union-attr]
            request.LANGUAGE_CODE = user.language  # type: ignore[union-attr,attr-defined]
        return user


jwt_auth = JWTAuth()
