"""Request body limits, enforced at the ASGI edge before Django reads a byte.

Django's ASGI handler reads the whole body (into a spooled temporary file) before any
middleware runs, so a limit checked in middleware would come after the upload. This wrapper
answers 413 at once when the declared ``Content-Length`` is over the limit, and cuts a body
off with 413 as soon as what arrives grows past it (chunked bodies declare no length).
Every path has a limit: ``API_MAX_BODY_BYTES``, or the path's own in ``API_BODY_LIMITS``
(a medical record's upload). Pages outside ``/api/`` (allauth, the admin, a calendar feed,
an unknown URL) are limited too: the handler would otherwise spool any body to disk.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils import translation

from core.errors import PayloadTooLarge, error_response
from core.languages import asked_language


def body_limit(path: str) -> int:
    """The most bytes a request body to ``path`` may have."""
    own = getattr(settings, "API_BODY_LIMITS", {}).get(path.rstrip("/") or "/")
    return int(own if own is not None else settings.API_MAX_BODY_BYTES)


class _BodyTooLarge(Exception):
    pass


def _header(scope: dict[str, Any], name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return ""


async def _send_413(scope: dict[str, Any], send: Any) -> None:
    with translation.override(
        asked_language(_header(scope, b"accept-language")) or settings.LANGUAGE_CODE
    ):
        response = error_response(PayloadTooLarge())
    headers = [(b"content-type", response["Content-Type"].encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": response.content})


class BodyLimitMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope.get("path", ""))
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
