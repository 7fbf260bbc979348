"""Bearer-token authentication for Ninja endpoints (a thin wrapper of allauth's).

allauth's ``JWTTokenAuth`` declares an ``apiKey`` scheme with no name, which is not valid
OpenAPI; this declares HTTP bearer. Tokens are validated statefully (see settings): a token
of a logged-out session, a changed password or a deactivated user is refused at once.

Sensitive actions ask for the password again. An account with none (Google sign-in only)
cannot give it; for it, a recent sign-in counts instead: the token's session was
authenticated (any way: Google, a code) within ``RECENT_SIGN_IN_MINUTES``
(:func:`require_recent_sign_in`). allauth records each authentication in the session
(``account_authentication_methods``); refreshing tokens adds none, so a stolen refresh
token never makes a session recent again.
"""

from __future__ import annotations

import time
from typing import Any

from allauth.account.internal.flows.login import (
    _AUTHENTICATION_METHODS_USER_SESSION_KEY,
    AUTHENTICATION_METHODS_SESSION_KEY,
)
from allauth.account.internal.userkit import user_id_to_str
from allauth.core.internal.httpkit import get_authorization_credential
from allauth.headless.contrib.ninja.security import JWTTokenAuth
from allauth.headless.tokens.strategies.jwt import internal
from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest
from django.utils import translation
from django.utils.translation import gettext_lazy as _

from accounts.errors import PasswordChangeRequired, SecondFactorRequired
from accounts.models import STAFF_ROLES, User
from accounts.tokens_validation import AuthSnapshot, validate_access_token
from core.errors import ApplicationError
from core.languages import asked_language

DEFAULT_RECENT_SIGN_IN_MINUTES = 5


class RecentSignInRequired(ApplicationError):
    code = "auth.recent_sign_in_required"
    status = 403
    message = _("For your security, please sign in again, then try again within a few minutes.")


class AuthedRequest(HttpRequest):
    """The request type of endpoints behind :data:`jwt_auth`: ``request.auth`` is the user."""

    auth: User
    auth_snapshot: AuthSnapshot


class JWTAuth(JWTTokenAuth):
    openapi_type = "http"
    openapi_scheme = "bearer"
    openapi_bearerFormat = "JWT"

    def __init__(
        self,
        *,
        allow_pending_password_change: bool = False,
        allow_without_second_factor: bool = False,
    ) -> None:
        super().__init__()
        self.allow_pending_password_change = allow_pending_password_change
        self.allow_without_second_factor = allow_without_second_factor

    def __call__(self, request: HttpRequest) -> Any:
        token = get_authorization_credential(request, "Bearer")
        found = validate_access_token(token) if token else None
        if found is None:
            return None
        user, snap = found
        request.user = user
        request.auth_snapshot = snap  # type: ignore[attr-defined]  # read as AuthedRequest
        answer_in_saved_language(request, snap.language)  # refusals below included
        if snap.must_change_password and not self.allow_pending_password_change:
            raise PasswordChangeRequired()
        if (
            snap.role in STAFF_ROLES
            and not self.allow_without_second_factor
            and not second_factor_passed(token_session(request), snap.id)
        ):
            raise SecondFactorRequired()
        return user


jwt_auth = JWTAuth()


def answer_in_saved_language(request: HttpRequest, language: str) -> None:
    """Unless the request asks for a language we speak, answer in the user's saved one."""
    if asked_language(request.META.get("HTTP_ACCEPT_LANGUAGE", "")) is None:
        translation.activate(language)
        request.LANGUAGE_CODE = language  # type: ignore[attr-defined]


# --- Staff second factor on the API (ID-10) ----------------------------------------------
#
# The admin site asks staff for a TOTP code at every sign-in (``accounts.otp``). The API
# gives a staff token the same powers (erasure, verification, the audit trail, break-glass
# access), so a staff account's token is refused (403 ``auth.second_factor_required``) until
# its session has passed the second factor: ``POST /api/v1/auth/second-factor`` with a
# code from the device enrolled on the admin site (``otp.second_factor_verify``). The mark
# lives in the token's server-side session: tokens refreshed from it keep it, and it ends
# with the session (logout, a password change, a deactivation).

SECOND_FACTOR_SESSION_KEY = "telemed_second_factor"


def second_factor_passed(session: SessionBase | None, user_id: str) -> bool:
    """Whether ``session`` passed the second factor for ``user_id`` with a device the user
    still has: removing a lost phone's device ends what it let in (one indexed query, for
    staff tokens only)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    mark = session.get(SECOND_FACTOR_SESSION_KEY) if session is not None else None
    if not (isinstance(mark, dict) and mark.get("user") == user_id):
        return False
    device = mark.get("device")
    return isinstance(device, int) and (
        TOTPDevice.objects.filter(pk=device, user_id=user_id, confirmed=True).exists()
    )


# --- Recent sign-in (accounts without a password) ----------------------------------------


def recent_sign_in_seconds() -> float:
    return 60.0 * float(getattr(settings, "RECENT_SIGN_IN_MINUTES", DEFAULT_RECENT_SIGN_IN_MINUTES))


def last_signed_in_at(session: SessionBase, user: Any) -> float | None:
    """When ``session`` last authenticated ``user`` (a Unix time), from allauth's records of
    the session's sign-ins (password, code, Google...), or ``None``."""
    if session.get(_AUTHENTICATION_METHODS_USER_SESSION_KEY) != user_id_to_str(user):
        return None
    records = session.get(AUTHENTICATION_METHODS_SESSION_KEY)
    if not isinstance(records, list):
        return None
    times = [
        float(r["at"])
        for r in records
        if isinstance(r, dict) and isinstance(r.get("at"), int | float)
    ]
    return max(times, default=None)


def signed_in_recently(session: SessionBase | None, user: Any) -> bool:
    at = last_signed_in_at(session, user) if session is not None else None
    return at is not None and time.time() - at < recent_sign_in_seconds()


def token_session(request: HttpRequest) -> SessionBase | None:
    """The server-side session of the request's access token (checked by :class:`JWTAuth`)."""
    token = get_authorization_credential(request, "Bearer")
    return session_of_token(token) if token else None


def session_of_token(token: str) -> SessionBase | None:
    """The server-side session of an access token (valid or not: check it first)."""
    payload = internal.decode_token(token, "access")
    return internal.get_token_session(payload) if payload is not None else None


def require_recent_sign_in(request: AuthedRequest) -> None:
    """For an account without a password, in place of asking for it: the access token's
    session signed in within ``RECENT_SIGN_IN_MINUTES``, else :class:`RecentSignInRequired`
    (the client signs in again, with Google, and retries with the new token)."""
    if not signed_in_recently(token_session(request), request.auth):
        raise RecentSignInRequired()
