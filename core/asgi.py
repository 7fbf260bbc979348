"""Django's ASGI handler with the whole synchronous part of a request in one thread hop.

Every view here is synchronous (the ORM), yet Django's ASGI handler builds an asynchronous
middleware chain: each ``MiddlewareMixin`` middleware then runs its ``process_request`` and
``process_response`` through ``sync_to_async``, a thread hop each, and the sync-only WhiteNoise
adds two more (about 20 hops a request, ~3 ms of CPU: more than a whole trivial request
needs). Built as for WSGI, the chain does the same work in one call.

Django also starts a **new thread for every request** (``ThreadSensitiveContext``: a
one-thread executor per request) and hops to it three times: the ``request_started`` signal,
the response, ``response.close()`` (``request_finished``). Here a request's synchronous work,
the two signals included, runs in one call on a thread of a bounded pool
(``ASGI_THREADS``): the request, its database connection (thread-local) and the signals that
hand that connection back to the pool stay on one thread, as under WSGI. The pool also bounds
how many requests run their synchronous part at once (Django's per-request threads do not).
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any, cast

import django
from asgiref.sync import sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, ASGIRequest, get_script_prefix
from django.db import close_old_connections
from django.http import FileResponse, HttpResponseBase
from django.urls import set_script_prefix


class SyncChainASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self.executor = ThreadPoolExecutor(
            max_workers=int(settings.ASGI_THREADS), thread_name_prefix="http"
        )

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            response = await sync_to_async(
                self.respond, thread_sensitive=False, executor=self.executor
            )(scope, body_file)
            try:
                await self.send_response(response, send)
            finally:
                if response.streaming:
                    await sync_to_async(
                        response.close, thread_sensitive=False, executor=self.executor
                    )()
        finally:
            body_file.close()

    def create_request(
        self, scope: Mapping[str, Any], body_file: IO[bytes]
    ) -> tuple[ASGIRequest, None] | tuple[None, HttpResponseBase]:
        """Django's, except that a ``Content-Type`` Django cannot parse (an RFC 2231 parameter
        naming an unknown charset raises ``ValueError``) is not a crash that the server answers
        in plain text. The request is built without that header, marked, and sent through the
        middleware like any other: ``telemed.middleware.ApiGuardMiddleware`` refuses it with
        the envelope, in the asked language, with the request id and the security headers."""
        try:
            return super().create_request(scope, body_file)
        except ValueError:
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-type"]
            created = super().create_request({**scope, "headers": headers}, body_file)
            if created[0] is not None:
                created[0].content_type_unreadable = True  # type: ignore[attr-defined]
            return created

    def respond(self, scope: dict[str, Any], body_file: Any) -> HttpResponseBase:
        """The synchronous part of a request, on one thread: ``request_started``, the
        middleware chain and the view, and (for a response already in memory)
        ``response.close()``, whose ``request_finished`` hands the database connection back.
        A streaming response is closed after it is sent; the connection goes back now."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error = self.create_request(scope, body_file)
        if request is None:  # a body that does not decode, or too large: Django's answer
            response = cast(HttpResponseBase, error)
        else:
            response = self.get_response(request)
            response._handler_class = self.__class__  # type: ignore[attr-defined]
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size
        if response.streaming:
            close_old_connections()
        else:
            response.close()
        return response


def get_asgi_application() -> SyncChainASGIHandler:
    """Like ``django.core.asgi.get_asgi_application``, with the synchronous chain."""
    django.setup(set_prefix=False)
    return SyncChainASGIHandler()
