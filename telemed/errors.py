"""One handler turns every exception under ``/api/v1/`` into the one error envelope."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from django.conf import settings
from django.core.exceptions import (
    BadRequest,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousFileOperation,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import OperationalError
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.utils import translation
from django.utils.translation import gettext as _
from django.views import defaults
from ninja import NinjaAPI
from ninja.errors import (
    AuthenticationError,
    AuthorizationError,
    HttpError,
    Throttled,
    ValidationError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from core.errors import (
    ApplicationError,
    Forbidden,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceUnavailable,
    Unauthenticated,
    error_for_status,
    error_response,
    infrastructure_error,
)
from core.languages import asked_language
from core.pagination import InvalidCursor
from telemed.middleware import ApiGuardMiddleware, is_api

logger = logging.getLogger("telemed.errors")
_STORAGE_UNREACHABLE = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
)


def _field_message(error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return _("This field is required.")
    if kind in {"string_too_long", "too_long"}:
        return _("Ensure this value has at most %(max)s characters.") % {
            "max": ctx.get("max_length", "?")
        }
    if kind in {"string_too_short", "too_short"}:
        return _("Ensure this value has at least %(min)s characters.") % {
            "min": ctx.get("min_length", "?")
        }
    if kind in {"int_parsing", "int_type", "float_parsing", "float_type", "decimal_parsing"}:
        return _("Enter a valid number.")
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        return _("This number is out of the allowed range.")
    if kind in {"uuid_parsing", "uuid_type"}:
        return _("Enter a valid identifier.")
    if kind.startswith("datetime") or kind.startswith("date"):
        return _("Enter a valid date or time.")
    if kind in {"bool_parsing", "bool_type"}:
        return _("Enter true or false.")
    if kind in {"enum", "literal_error"}:
        return _("Select a valid choice.")
    if kind in {"value_error", "assertion_error"} and error.get("msg"):
        # Messages raised by our own validators are already translated.
        return str(error["msg"]).removeprefix("Value error, ")
    return _("This value is not valid.")


def validation_fields(errors: list[dict[str, Any]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        # ("body", "payload", "email") -> "email"; ("query", "limit") -> "limit"
        if len(loc) >= 2 and loc[0] == "body":
            loc = loc[2:] or loc[1:]
        elif loc and loc[0] in {"query", "path", "header", "cookie", "form", "file"}:
            loc = loc[1:]
        fields.setdefault(".".join(loc) or "body", _field_message(error))
    return fields


def install(api: NinjaAPI) -> None:
    @api.exception_handler(ApplicationError)
    def application_error(request: HttpRequest, exc: ApplicationError) -> HttpResponse:
        return error_response(exc)

    @api.exception_handler(ValidationError)
    def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        if exc.errors and all(tuple(e.get("loc", ()))[-1:] == ("cursor",) for e in exc.errors):
            # A cursor too long to be one of ours is a bad cursor, as any other (Lists).
            return error_response(InvalidCursor())
        return error_response(InvalidRequest(fields=validation_fields(exc.errors)))

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        if isinstance(exc.__cause__, ApplicationError):
            # Ninja wraps whatever the body parser raises; ours carry their own envelope.
            return error_response(exc.__cause__)
        if isinstance(exc, Throttled):
            return error_response(RateLimited(retry_after=exc.wait or 1))
        if isinstance(exc.__cause__, ValueError) and exc.status_code == 400:
            # Ninja wraps a body that does not parse as JSON in a 400.
            return error_response(
                InvalidRequest(fields={"body": _("The request body is not valid JSON.")})
            )
        if isinstance(exc.__cause__, RequestDataTooBig):
            return error_response(PayloadTooLarge())
        if isinstance(exc, AuthenticationError):
            response = error_response(Unauthenticated())
            response["WWW-Authenticate"] = "Bearer"
            return response
        if isinstance(exc, AuthorizationError):
            return error_response(Forbidden())
        return error_response(error_for_status(exc.status_code))

    @api.exception_handler(DjangoValidationError)
    def model_validation_error(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
        fields = (
            {k: " ".join(str(m) for m in v) for k, v in exc.message_dict.items()}
            if hasattr(exc, "error_dict")
            else {}
        )
        return error_response(InvalidRequest(fields=fields))

    @api.exception_handler(Http404)
    def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return error_response(NotFound())

    @api.exception_handler(PermissionDenied)
    def permission_denied(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
        return error_response(Forbidden())

    @api.exception_handler(MultiPartParserError)
    @api.exception_handler(BadRequest)
    def bad_form(request: HttpRequest, exc: Exception) -> HttpResponse:
        # A form body that does not parse (no boundary, cut short; Django's BadRequest: a
        # urlencoded body in a charset other than UTF-8): read lazily by a view.
        return error_response(
            InvalidRequest(fields={"body": _("The request body is not valid form data.")})
        )

    @api.exception_handler(RequestDataTooBig)
    def too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
        return error_response(PayloadTooLarge())

    @api.exception_handler(SuspiciousOperation)
    def suspicious(request: HttpRequest, exc: SuspiciousOperation) -> HttpResponse:
        # Django refuses what it will not parse (over DATA_UPLOAD_MAX_NUMBER_FIELDS or
        # _FILES...) when a view first reads it: the client's fault, not a crash of ours.
        if isinstance(exc, SuspiciousFileOperation):  # a path of ours, not the client's input
            logger.error("suspicious file operation", exc_info=exc)
            return error_response(ApplicationError())
        logger.warning("suspicious request refused: %s", type(exc).__name__)
        if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
            return error_response(InvalidRequest(_("Too many fields or files were sent.")))
        return error_response(InvalidRequest())

    @api.exception_handler(OperationalError)
    def database_error(request: HttpRequest, exc: OperationalError) -> HttpResponse:
        answer = infrastructure_error(exc)
        if answer is None:
            return unexpected(request, exc)
        if isinstance(answer, ServiceUnavailable):
            # No connection to be had from the pool: nothing was done, try again shortly.
            logger.warning("database unavailable: %s", type(exc.__cause__).__name__)
        else:
            # A deadlock or serialisation failure: PostgreSQL rolled the transaction back,
            # nothing was changed; the client may simply try again.
            logger.warning("transaction rolled back by the database: %s", exc.__cause__.sqlstate)  # type: ignore[union-attr]
        return error_response(answer)

    @api.exception_handler(BotoCoreError)
    def storage_unreachable(request: HttpRequest, exc: BotoCoreError) -> HttpResponse:
        # Object storage could not be reached (connection refused, timed out): nothing of
        # ours is wrong, and the client may try again shortly. Other botocore errors (no
        # credentials, a bad parameter) are ours: a 500, logged whole.
        if not isinstance(exc, _STORAGE_UNREACHABLE):
            return unexpected(request, exc)
        logger.warning("object storage unavailable: %s", type(exc).__name__)
        return error_response(ServiceUnavailable(headers={"Retry-After": "30"}))

    @api.exception_handler(RedisConnectionError)
    @api.exception_handler(RedisTimeoutError)
    def redis_unreachable(request: HttpRequest, exc: Exception) -> HttpResponse:
        # What lives in Redis alone (presence, rate-limit counters) is unknown while it is
        # away: the answer is "try again shortly", not a server error. A refused password
        # is our configuration's fault: a 500, logged whole.
        answer = infrastructure_error(exc)
        if answer is None:
            return unexpected(request, exc)
        logger.warning("redis unavailable: %s", type(exc).__name__)
        return error_response(answer)

    @api.exception_handler(ClientError)
    def storage_error(request: HttpRequest, exc: ClientError) -> HttpResponse:
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        if status >= 500:  # the storage's own trouble (S3's 500 or 503 SlowDown)
            logger.warning("object storage answered %s", status)
            return error_response(ServiceUnavailable(headers={"Retry-After": "30"}))
        return unexpected(request, exc)

    @api.exception_handler(Exception)
    def unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
        logger.exception("unhandled error", extra={"error_type": type(exc).__name__})
        return error_response(ApplicationError())


def _error_page(default: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Django's page for an error raised outside any view (``handler400`` ...), but the
    envelope under ``/api/``. Most such pages pass ``ApiGuardMiddleware``, which would give
    them the envelope anyway; one raised in a middleware before it would not: a Host not in
    ``ALLOWED_HOSTS`` refused by ``SecurityMiddleware``'s HTTPS redirect. ``LocaleMiddleware``
    may not have run either: the language is the one it chose, else the one asked for."""

    def page(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
        # Django's handler500 takes no exception
        response = default(request) if exception is None else default(request, exception)
        if not is_api(request):
            return response
        language = getattr(request, "LANGUAGE_CODE", None) or asked_language(
            request.headers.get("Accept-Language", "")
        )
        with translation.override(language or settings.LANGUAGE_CODE):
            return ApiGuardMiddleware.envelope(response)

    return page


bad_request = _error_page(defaults.bad_request)
permission_denied = _error_page(defaults.permission_denied)
page_not_found = _error_page(defaults.page_not_found)
server_error = _error_page(defaults.server_error)
