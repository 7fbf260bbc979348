from __future__ import annotations

import json
import logging

from allauth.core.exceptions import RateLimited as AllauthRateLimited
from allauth.core.internal.httpkit import get_authorization_credential
from allauth.headless.internal.sessionkit import lookup_session
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import SessionBase
from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

from accounts.auth import answer_in_saved_language, second_factor_passed, session_of_token
from accounts.errors import PasswordChangeRequired, SecondFactorRequired, SmsUnavailable
from accounts.models import STAFF_ROLES
from accounts.tokens_validation import AuthSnapshot, user_snapshot
from core.errors import (
    ApplicationError,
    RateLimited,
    ServiceUnavailable,
    error_response,
    infrastructure_error,
)
from core.sms import SmsError

logger = logging.getLogger(__name__)

# What a signed-in caller with a step still pending (a password to change, a staff second
# factor to pass) may still reach in allauth's API: its session (and logging out), a token
# refresh, the configuration; and, with a password to change, changing it.
_ALLOWED = (
    "/_allauth/app/v1/auth/session",
    "/_allauth/app/v1/tokens/refresh",
    "/_allauth/app/v1/config",
)
_PASSWORD_CHANGE = "/_allauth/app/v1/account/password/change"


class AllauthEdgeMiddleware(MiddlewareMixin):
    """What allauth's endpoints need from us around them.

    - Accounts created by an admin must change their password before anything else, and a
      staff account's session must pass the second factor (``accounts.auth``); our own
      endpoints check both in :mod:`accounts.auth`, this covers allauth's (signed in by
      access token or by session token): a stolen staff password alone changes neither the
      account's password, addresses, phone nor linked Google account.
    - What allauth's flows raise instead of answering (our adapter's errors, a failing SMS
      provider, some rate limits) becomes our error envelope, not a 500.
    - allauth answers rate limits with 429 but no ``Retry-After``: add one (its windows are
      at most minutes; a client that waits a minute is never refused for the same reason).
    - Redis away (allauth's rate limits count in the cache; a session's change must reach
      it): 503 with ``Retry-After``, as our API answers it, not an HTML 500. A refused Redis
      password is our configuration's fault: a 500.
    """

    RETRY_AFTER_SECONDS = "60"

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        if not request.path.startswith("/_allauth/") or request.path.startswith(_ALLOWED):
            return None
        caller = _caller(request)
        if caller is None:
            return None
        snap, session = caller
        if snap.must_change_password:
            if request.path.startswith(_PASSWORD_CHANGE):
                return None
            answer_in_saved_language(request, snap.language)
            return error_response(PasswordChangeRequired())
        if snap.role in STAFF_ROLES and not second_factor_passed(session, snap.id):
            answer_in_saved_language(request, snap.language)
            return error_response(SecondFactorRequired())
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not request.path.startswith("/_allauth/"):
            return None
        if isinstance(exception, SmsError):
            return error_response(SmsUnavailable())
        if isinstance(exception, AllauthRateLimited):
            # Raised, not answered, by some of allauth's limits (codes sent to a phone).
            return error_response(RateLimited(retry_after=int(self.RETRY_AFTER_SECONDS)))
        if isinstance(exception, ApplicationError):  # ours, raised by the adapter
            return error_response(exception)
        answer = infrastructure_error(exception)
        if isinstance(answer, ServiceUnavailable):
            logger.warning("redis unavailable: %s", type(exception).__name__)
            return error_response(answer)
        return None

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if not request.path.startswith("/_allauth/"):
            return response
        if response.status_code == 400 and _is_rate_limit_error(response):
            # allauth reports some limits (too many login attempts or code requests) as a
            # form error; clients should see them as what they are.
            response.status_code = 429
            response.content = response.content.replace(b'"status": 400', b'"status": 429', 1)
        if response.status_code == 429:
            response.setdefault("Retry-After", self.RETRY_AFTER_SECONDS)
        return response


def _caller(request: HttpRequest) -> tuple[AuthSnapshot, SessionBase] | None:
    """The signed-in caller and its session, found as allauth finds them: by the
    ``X-Session-Token`` header if there is one, else by the access token's session. (Read
    in any other order, a patient's access token beside a staff session token would be
    checked as the patient while allauth acts as the staff member.) The session is only
    read, not authenticated: Django's get_user() would cycle the key of a session signed
    with a fallback SECRET_KEY on this copy, and allauth would then find its token gone
    (410); allauth authenticates it next."""
    session_token = request.headers.get("X-Session-Token")
    if session_token:
        session = lookup_session(session_token)
    else:
        token = get_authorization_credential(request, "Bearer")
        session = session_of_token(token) if token else None
    user_id = session.get(SESSION_KEY) if session is not None else None
    snap = user_snapshot(str(user_id)) if user_id else None
    return (snap, session) if snap is not None and session is not None else None


_RATE_LIMIT_CODES = {"too_many_login_attempts"}


def _is_rate_limit_error(response: HttpResponse) -> bool:
    if not response.get("Content-Type", "").startswith("application/json"):
        return False
    try:
        errors = json.loads(response.content).get("errors", [])
    except (ValueError, AttributeError):
        return False
    return any(isinstance(e, dict) and e.get("code") in _RATE_LIMIT_CODES for e in errors)
