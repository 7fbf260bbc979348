from __future__ import annotations

import hashlib
import io
import json
import logging
import unicodedata
from typing import Any

from allauth.core.exceptions import RateLimited as AllauthRateLimited
from allauth.core.internal.httpkit import get_authorization_credential
from allauth.core.internal.ratelimit import truncate_ip
from allauth.headless.internal.sessionkit import lookup_session
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.backends.base import SessionBase
from django.core.cache import cache
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import add_never_cache_headers
from django.utils.deprecation import MiddlewareMixin
from django.utils.translation import gettext as _

from accounts.auth import answer_in_saved_language, second_factor_passed, session_of_token
from accounts.errors import PasswordChangeRequired, SecondFactorRequired, SmsUnavailable
from accounts.models import STAFF_ROLES
from accounts.tokens_validation import AuthSnapshot, user_snapshot
from audit.services import client_ip
from core import ratelimit
from core.cache import best_effort
from core.errors import (
    ApplicationError,
    InvalidRequest,
    RateLimited,
    ServiceUnavailable,
    error_response,
    infrastructure_error,
)
from core.sms import SmsError
from core.text import refuse_unstorable_text

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
# allauth's endpoints that check a one-time code (a login's, a phone's, an e-mail address's,
# a password reset's), by POST or GET; limited per client address by
# ``ACCOUNT_RATE_LIMITS["code_check"]`` (``core.ratelimit``).
_CODE_CHECKS = frozenset(
    {
        "/_allauth/app/v1/auth/code/confirm",
        "/_allauth/app/v1/auth/phone/verify",
        "/_allauth/app/v1/auth/email/verify",
        "/_allauth/app/v1/auth/password/reset",
    }
)
# The longest one check holds its session's turn (it gives it back when it answers).
CODE_CHECK_TURN_SECONDS = 30
_TURN = "_accounts_code_check_turn"  # the request's attribute: the turn it holds


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
    - Text that cannot be stored is refused before allauth reads it (:func:`_unstorable_text`),
      a phone number is spelled in ASCII digits (:func:`_phone_in_ascii_digits`), and
      one-time codes are checked one at a time per session (:func:`_code_check_turn`).
    """

    RETRY_AFTER_SECONDS = "60"

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        if not request.path.startswith("/_allauth/"):
            return None
        try:
            return _read_body(request) or self._pending_step(request) or _code_check_turn(request)
        except Exception as exc:  # Redis away: as when allauth's view meets it
            answer = self.process_exception(request, exc)
            if answer is None:
                raise
            return answer

    def _pending_step(self, request: HttpRequest) -> HttpResponse | None:
        if request.path.startswith(_ALLOWED):
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
            what = "database" if isinstance(exception, OperationalError) else "redis"
            logger.warning("%s unavailable: %s", what, type(exception).__name__)
            return error_response(answer)
        return None

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if not request.path.startswith("/_allauth/"):
            return response
        turn = getattr(request, _TURN, None)
        if turn is not None:  # the session has been saved: the next check reads this one's count
            best_effort(cache.delete, turn, what="code check turn")
        if response.status_code == 400 and _is_rate_limit_error(response):
            # allauth reports some limits (too many login attempts or code requests) as a
            # form error; clients should see them as what they are.
            response.status_code = 429
            response.content = response.content.replace(b'"status": 400', b'"status": 429', 1)
        if response.status_code == 429:
            response.setdefault("Retry-After", self.RETRY_AFTER_SECONDS)
        return response


def _caller(request: HttpRequest) -> tuple[AuthSnapshot, SessionBase] | None:
    """The signed-in caller and its session (:func:`_session`). The session is only read,
    not authenticated: Django's get_user() would cycle the key of a session signed with a
    fallback SECRET_KEY on this copy, and allauth would then find its token gone (410);
    allauth authenticates it next."""
    session = _session(request)
    user_id = session.get(SESSION_KEY) if session is not None else None
    snap = user_snapshot(str(user_id)) if user_id else None
    return (snap, session) if snap is not None and session is not None else None


_SESSION = "_accounts_allauth_session"  # the request's attribute: what _session found


def _session(request: HttpRequest) -> SessionBase | None:
    """The session allauth will act in, found as allauth finds it: by the ``X-Session-Token``
    header if there is one, else by the access token's. (Read in any other order, a
    patient's access token beside a staff session token would be checked as the patient
    while allauth acts as the staff member.) Looked up once per request: the pending-step
    check and the code check turn both ask."""
    if hasattr(request, _SESSION):
        found: SessionBase | None = getattr(request, _SESSION)
        return found
    session_token = request.headers.get("X-Session-Token")
    if session_token:
        session = lookup_session(session_token)
    else:
        token = get_authorization_credential(request, "Bearer")
        session = session_of_token(token) if token else None
    setattr(request, _SESSION, session)
    return session


_RATE_LIMIT_CODES = {"too_many_login_attempts"}


def _is_rate_limit_error(response: HttpResponse) -> bool:
    if not response.get("Content-Type", "").startswith("application/json"):
        return False
    try:
        errors = json.loads(response.content).get("errors", [])
    except (ValueError, AttributeError):
        return False
    return any(isinstance(e, dict) and e.get("code") in _RATE_LIMIT_CODES for e in errors)


# --- Before allauth reads the request ------------------------------------------------------


def _read_body(request: HttpRequest) -> HttpResponse | None:
    """allauth reads the body of any request but a GET as JSON (decoded as here: UTF-8, an
    object): what it will read is checked and spelled first. A body that is not JSON is left
    to allauth's own 400."""
    if request.method == "GET" or not request.body:
        return None
    try:
        data = json.loads(request.body.decode("utf8"))
    except ValueError:  # not UTF-8, not JSON
        return None
    if not isinstance(data, dict):
        return None
    refused = _unstorable_text(data)
    if refused is None:  # only text that encodes goes back into the body
        _phone_in_ascii_digits(request, data)
    return refused


def _unstorable_text(data: dict[str, Any]) -> HttpResponse | None:
    """allauth hands the body's text to Argon2, PyJWT and psycopg, which cannot encode a lone
    surrogate (valid JSON: ``"\\ud800"``) and failed with a 500. Refused here as our API
    refuses it (``core.text``, NUL characters too): 400 in allauth's error format."""
    try:
        refuse_unstorable_text(data)
    except InvalidRequest as exc:
        errors = [
            {
                "message": str(message),
                "code": "invalid",
                **({"param": field} if field != "body" else {}),
            }
            for field, message in exc.fields.items()
        ]
        return _allauth_error(400, errors)
    return None


def _phone_in_ascii_digits(request: HttpRequest, data: dict[str, Any]) -> None:
    """A phone number in any script's decimal digits (Arabic-Indic, Persian, full-width...)
    is the number in ASCII digits, rewritten in the body before allauth reads it, whichever
    endpoint takes it (sign-up, login by password or by code, a change of number). allauth's
    E.164 check takes other digits but an ASCII first one (its login by password refused
    ``+٢٠١...``), and each spelling it took was stored as typed: a number of its own, with
    its own uniqueness among verified numbers and its own limit on codes texted to it."""
    phone = data.get("phone")
    if not isinstance(phone, str) or _ascii_digits(phone) == phone:
        return
    data["phone"] = _ascii_digits(phone)
    body = json.dumps(data, ensure_ascii=False).encode()
    # What ``request.body`` answers from now on (Django keeps the body it read there), and
    # what a read of the stream would give.
    request._body = body  # type: ignore[attr-defined]  # Django's cache of the body
    request._stream = io.BytesIO(body)  # type: ignore[attr-defined]


def _ascii_digits(text: str) -> str:
    """``text`` with each Unicode decimal digit (``٣``, ``۳``, ``３``...) as its ASCII digit."""
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in text)


def _code_check_turn(request: HttpRequest) -> HttpResponse | None:
    """allauth ends a one-time code after three wrong tries, counted in the session that holds
    it: read, changed and saved back with no lock, so checks sent at once all read the same
    count, and a dozen parallel guesses were all checked while the code lived on. Here each
    session (:func:`_session`: ``X-Session-Token``, else the access token's session) checks one code at a time: another check meanwhile is refused (429), and the turn is
    given back once the answer is made, the session saved. Checks are also limited per client
    address (``ACCOUNT_RATE_LIMITS["code_check"]``), whichever sessions they are for."""
    if request.path not in _CODE_CHECKS:
        return None
    ip = truncate_ip(client_ip(request) or "-")
    wait = ratelimit.consume(
        "allauth_code_check", ip, settings.ACCOUNT_RATE_LIMITS.get("code_check")
    )
    if wait:
        return _too_many_code_checks(wait)
    session = _session(request)
    session_key = session.session_key if session is not None else None
    if not session_key:  # a new session: it holds no code
        return None
    turn = f"allauth-code-check:{hashlib.sha256(session_key.encode()).hexdigest()}"
    if not cache.add(turn, 1, timeout=CODE_CHECK_TURN_SECONDS):
        return _too_many_code_checks(1)
    setattr(request, _TURN, turn)
    return None


def _too_many_code_checks(retry_after: int) -> HttpResponse:
    message = _("Too many attempts to enter a code. Please wait a moment, then try again.")
    response = _allauth_error(429, [{"message": message, "code": "too_many_code_checks"}])
    response["Retry-After"] = str(retry_after)
    return response


def _allauth_error(status: int, errors: list[dict[str, Any]]) -> HttpResponse:
    """An error as allauth's API answers one: ``{"status": ..., "errors": [{"message",
    "code", "param"?}]}``."""
    response = JsonResponse(
        {"status": status, "errors": errors},
        status=status,
        json_dumps_params={"ensure_ascii": False},
    )
    add_never_cache_headers(response)
    return response
