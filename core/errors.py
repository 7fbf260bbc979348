"""The one error type every layer raises, turned into the one envelope by one handler.

``{"error": {"code": "<domain>.<reason>", "message": "<in the request's language>",
"fields": {...}}}``. Subclasses are registered by code so that a test can walk all of them
and check that each has a real Arabic message.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.http import JsonResponse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

REGISTRY: dict[str, type[ApplicationError]] = {}


class ApplicationError(Exception):
    code: ClassVar[str] = "server.error"
    status: ClassVar[int] = 500
    message: ClassVar[str | Promise] = _("Something went wrong on our side. Please try again.")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" in cls.__dict__:
            existing = REGISTRY.get(cls.code)
            if existing is not None and existing.__qualname__ != cls.__qualname__:
                raise TypeError(f"error code {cls.code} registered twice")
            REGISTRY[cls.code] = cls

    def __init__(
        self,
        message: str | Promise | None = None,
        *,
        fields: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = message if message is not None else self.message
        self.fields = fields or {}
        self.headers = headers or {}
        super().__init__(str(self.detail))

    def envelope(self) -> dict[str, Any]:
        return envelope(self.code, self.detail, self.fields)


def envelope(
    code: str, message: str | Promise, fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {"error": {"code": code, "message": str(message), "fields": fields or {}}}


REGISTRY[ApplicationError.code] = ApplicationError


def error_response(exc: ApplicationError) -> JsonResponse:
    """The envelope as an HTTP response, with the error's headers (``Retry-After``...)."""
    response = JsonResponse(
        exc.envelope(), status=exc.status, json_dumps_params={"ensure_ascii": False}
    )
    for name, value in exc.headers.items():
        response[name] = value
    return response


class InvalidRequest(ApplicationError):
    code = "request.invalid"
    status = 422
    message = _("Some of the data sent is not valid.")


class Unauthenticated(ApplicationError):
    code = "auth.unauthenticated"
    status = 401
    message = _("Please sign in to continue.")


class Forbidden(ApplicationError):
    code = "auth.forbidden"
    status = 403
    message = _("You do not have permission to do this.")


class NotFound(ApplicationError):
    code = "request.not_found"
    status = 404
    message = _("The requested resource was not found.")


class MethodNotAllowed(ApplicationError):
    code = "request.method_not_allowed"
    status = 405
    message = _("This method is not allowed here.")


class Conflict(ApplicationError):
    code = "request.conflict"
    status = 409
    message = _("The request conflicts with the current state. Please reload and try again.")


class PayloadTooLarge(ApplicationError):
    code = "request.too_large"
    status = 413
    message = _("The request body is too large.")


class UnsupportedMediaType(ApplicationError):
    code = "request.unsupported_media_type"
    status = 415
    message = _("This content type is not supported. Send JSON.")


class RateLimited(ApplicationError):
    code = "request.rate_limited"
    status = 429
    message = _("Too many requests. Please wait and try again.")

    def __init__(self, retry_after: int, **kwargs: Any) -> None:
        super().__init__(headers={"Retry-After": str(max(1, int(retry_after)))}, **kwargs)
        self.retry_after = retry_after


class ServiceUnavailable(ApplicationError):
    code = "server.unavailable"
    status = 503
    message = _("The service is temporarily unavailable. Please try again shortly.")


_BY_STATUS: dict[int, type[ApplicationError]] = {
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: InvalidRequest,
    503: ServiceUnavailable,
}


def error_for_status(status: int) -> ApplicationError:
    """The error a bare HTTP status stands for (a response or exception of Django's or
    Ninja's own): the one of that status, else a bad request for any 4xx, else ours."""
    cls = _BY_STATUS.get(status) or (InvalidRequest if 400 <= status < 500 else ApplicationError)
    return cls()


def infrastructure_error(exc: BaseException) -> ApplicationError | None:
    """The answer to a failure of the database or Redis rather than of our code, the same for
    REST (``telemed/errors.py``), sockets and allauth's endpoints: a deadlock or serialisation
    failure rolled the transaction back (409, try again); no database connection to be had in
    ``DB_POOL_TIMEOUT`` (psycopg's ``PoolTimeout``: the pool is full, or the database is away
    and the pool cannot connect) or Redis unreachable or timing out (503, ``Retry-After: 5``:
    nothing was done, or what lives in Redis alone is unknown meanwhile). None for anything
    else: a refused Redis password, a connection lost in the middle of a transaction (its
    outcome unknown) or refused without the pool (``DB_POOL_MAX_SIZE=0``; psycopg does not
    tell it apart) are a 500, logged whole."""
    from django.db import OperationalError
    from psycopg_pool import PoolTimeout
    from redis.exceptions import AuthenticationError as RedisAuthenticationError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    if isinstance(exc, OperationalError):
        if getattr(exc.__cause__, "sqlstate", "") in ("40P01", "40001"):
            return Conflict()
        if isinstance(exc.__cause__, PoolTimeout):
            return ServiceUnavailable(headers={"Retry-After": "5"})
        return None
    if isinstance(exc, RedisConnectionError | RedisTimeoutError) and not isinstance(
        exc, RedisAuthenticationError
    ):
        return ServiceUnavailable(headers={"Retry-After": "5"})
    return None
