"""HTTP middleware: request context (id, metrics, access log), API guards, security headers."""

from __future__ import annotations

import codecs
import logging
import re
import time
import uuid

from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin
from django.utils.translation import gettext as _

from core.bodylimit import body_limit
from core.errors import (
    PayloadTooLarge,
    UnsupportedMediaType,
    error_for_status,
    error_response,
)
from telemed import metrics
from telemed.logging import request_id_var

access_log = logging.getLogger("telemed.access")

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
API_PREFIX = "/api/"
_BODY_TYPES = ("application/json", "multipart/form-data")
# Provider callbacks that post forms (Twilio's status callback), each checked by signature.
_FORM_PATHS = ("/api/v1/realtime/twilio/",)
_UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def charset_readable(request: HttpRequest) -> bool:
    """Whether a body could be decoded in the charset the ``Content-Type`` declares. Not when
    Django could not parse the header at all (``core.asgi`` marks the request), nor when the
    charset is unknown (Django would quietly read the body as UTF-8 instead) or is a codec
    but no text encoding (``rot13``, ``base64``, ``zlib``: Django's form parsers would fail
    on it with a ``LookupError``, a 500). A request without a body has nothing to decode: its
    ``Content-Type`` is not looked at (as Django does not)."""
    has_body = request.META.get("CONTENT_LENGTH", "") not in ("", "0") or (
        "HTTP_TRANSFER_ENCODING" in request.META
    )
    if not has_body:
        return True
    if getattr(request, "content_type_unreadable", False):
        return False
    charset = (request.content_params or {}).get("charset")
    if charset is None:
        return True
    try:
        return codecs.lookup(charset)._is_text_encoding
    except LookupError:
        return False


class RequestContextMiddleware(MiddlewareMixin):
    """Request id (``X-Request-ID`` accepted when well-formed, else generated, always echoed),
    Prometheus request metrics by route template, and one structured access-log line.

    The access log names the route template, never the raw path or query string, which may
    carry identifiers or tokens.
    """

    def process_request(self, request: HttpRequest) -> None:
        incoming = request.headers.get("X-Request-ID", "")
        request.request_id = incoming if _REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex  # type: ignore[attr-defined]
        request._ctx_token = request_id_var.set(request.request_id)  # type: ignore[attr-defined]
        request._started = time.perf_counter()  # type: ignore[attr-defined]

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        request_id = getattr(request, "request_id", None)
        if request_id is None:
            return response
        response["X-Request-ID"] = request_id
        elapsed = time.perf_counter() - request._started  # type: ignore[attr-defined]
        match = getattr(request, "resolver_match", None)
        route = ("/" + match.route) if match is not None and match.route else "unmatched"
        metrics.observe_request(request.method or "", route, response.status_code, elapsed)
        access_log.info(
            "request",
            extra={
                "method": request.method,
                "route": route,
                "status": response.status_code,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )
        request_id_var.reset(request._ctx_token)  # type: ignore[attr-defined]
        return response


class ApiGuardMiddleware(MiddlewareMixin):
    """Refuse what the API cannot take before any body is read, and give every error under
    ``/api/`` the one envelope, including Django's own (404/405 for unknown routes and
    methods, 400 for a bad Host, 403 for CSRF). ``HEAD`` is 405 (Ninja routes name ``GET``
    alone): answering it by running the ``GET`` would audit downloads and views that never
    happened, and spend their rate limits. A ``Content-Type`` whose charset cannot be read
    is refused on every path (as the edge's 413), before a form parser fails on it.
    """

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        if not charset_readable(request):
            return error_response(
                UnsupportedMediaType(_("This character set is not supported. Send UTF-8."))
            )
        if not is_api(request):
            return None
        try:
            declared = int(request.headers.get("Content-Length") or 0)
        except ValueError:
            declared = 0
        if declared > body_limit(request.path):
            return error_response(PayloadTooLarge())
        if request.method in _UNSAFE and declared > 0:
            content_type = (request.content_type or "").lower()
            form_ok = content_type == "application/x-www-form-urlencoded" and (
                request.path.startswith(_FORM_PATHS)
            )
            if content_type not in _BODY_TYPES and not form_ok:
                return error_response(UnsupportedMediaType())
        return None

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if not is_api(request):
            return response
        return self.envelope(response)

    @staticmethod
    def envelope(response: HttpResponse) -> HttpResponse:
        """An error answer of Django's (a page) as the envelope, its headers kept."""
        status = response.status_code
        if status < 400 or response.get("Content-Type", "").startswith("application/json"):
            return response
        new = error_response(error_for_status(status))
        new.status_code = status
        for header, value in response.items():
            if header.lower() not in {"content-type", "content-length"}:
                new[header] = value
        return new


class SecurityHeadersMiddleware(MiddlewareMixin):
    """Headers Django does not set by itself. The API answers JSON only, so its content
    policy forbids everything; the docs page needs its own scripts and styles."""

    API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    PAGE_CSP = (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'self'"
    )

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        is_json = response.get("Content-Type", "").startswith("application/json")
        response.setdefault("Content-Security-Policy", self.API_CSP if is_json else self.PAGE_CSP)
        response.setdefault(
            "Permissions-Policy", "camera=(self), microphone=(self), geolocation=(self)"
        )
        response.setdefault("Cross-Origin-Resource-Policy", "same-site")
        if is_api(request):
            # Responses may carry health data: nothing in shared or browser caches by default.
            response.setdefault("Cache-Control", "no-store")
        return response
