"""Request body limits, enforced at the ASGI edge before Django reads a byte.

Django's ASGI handler reads the whole body (into a spooled temporary file) before any
middleware runs, so a limit checked in middleware would come after the upload. This wrapper
answers 413 at once when the declared ``Content-Length`` is over the limit, and cuts a body
off with 413 as soon as what arrives grows past it (chunked bodies declare no length).
The limit is ``API_MAX_BODY_BYTES`` under ``/api/``, or a path's own in ``API_BODY_LIMITS``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import translation

from core.errors import PayloadTooLarge, error_response

API_PREFIX = "/api/"


def body_limit(path: str) -> int | None:
    """The most bytes a request body to ``path`` may have; ``None``: not ours to limit."""
    own = getattr(settings, "API_BODY_LIMITS", {}).get(path.rstrip("/") or "/")
    if own is not None:
        return int(own)
    if path.startswith(API_PREFIX):
        return int(settings.API_MAX_BODY_BYTES)
    return None


class _BodyTooLarge(Exception):
    pass


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


async def _send_413(scope: dict[str, Any], send: Any) -> None:
    accept = _header(scope, b"accept-language")
    # The same choice LocaleMiddleware makes, from the header alone (no user yet).
    code = "en"
    for part in accept.split(","):
        tag = part.split(";")[0].strip().lower()
        if tag[:2] in dict(settings.LANGUAGES):
            code = tag[:2]
            break
    with translation.override(code):
        response = error_response(PayloadTooLarge())
    headers = [(b"content-type", response["Content-Type"].encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": response.content})


class BodyLimitMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        limit = body_limit(scope.get("path", "")) if scope["type"] == "http" else None
        if limit is None:
            await self.app(scope, receive, send)
            return
        try:
            declared = int(_header(scope, b"content-length") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            await _send_413(scope, send)
            return
        received = 0
        started = False

        async def counted_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge()
            return message

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except _BodyTooLarge:
            if not started:
                await _send_413(scope, send)
