"""Bearer-token authentication for Ninja endpoints (a thin wrapper of allauth's).

allauth's ``JWTTokenAuth`` declares an ``apiKey`` scheme with no name, which is not valid
OpenAPI; this declares HTTP bearer. Tokens are validated statefully (see settings): a token
of a logged-out session, a changed password or a deactivated user is refused at once.
"""

from __future__ import annotations

from typing import Any

from allauth.core.internal.httpkit import get_authorization_credential
from allauth.headless.contrib.ninja.security import JWTTokenAuth
from django.http import HttpRequest
from django.utils import translation

from accounts.errors import PasswordChangeRequired
from accounts.models import User
from accounts.tokens_validation import AuthSnapshot, validate_access_token
from core.languages import asked_language


class AuthedRequest(HttpRequest):
    """The request type of endpoints behind :data:`jwt_auth`: ``request.auth`` is the user."""

    auth: User
    auth_snapshot: AuthSnapshot


class JWTAuth(JWTTokenAuth):
    openapi_type = "http"
    openapi_scheme = "bearer"
    openapi_bearerFormat = "JWT"

    def __init__(self, *, allow_pending_password_change: bool = False) -> None:
        super().__init__()
        self.allow_pending_password_change = allow_pending_password_change

    def __call__(self, request: HttpRequest) -> Any:
        token = get_authorization_credential(request, "Bearer")
        found = validate_access_token(token) if token else None
        if found is None:
            return None
        user, snap = found
        request.user = user
        request.auth_snapshot = snap  # type: ignore[attr-defined]  # read as AuthedRequest
        if snap.must_change_password and not self.allow_pending_password_change:
            raise PasswordChangeRequired()
        if asked_language(request.META.get("HTTP_ACCEPT_LANGUAGE", "")) is None:
            # No language we speak asked for: answer in the user's saved language.
            translation.activate(snap.language)
            request.LANGUAGE_CODE = snap.language  # type: ignore[attr-defined]
        return user


jwt_auth = JWTAuth()
