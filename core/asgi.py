"""Django's ASGI handler with the middleware chain run synchronously, one thread hop a request.

Every view here is synchronous (the ORM), yet Django's ASGI handler builds an asynchronous
middleware chain: each ``MiddlewareMixin`` middleware then runs its ``process_request`` and
``process_response`` through ``sync_to_async``, a thread hop each, and the sync-only WhiteNoise
adds two more (about 20 hops a request, ~3 ms of CPU: more than a whole trivial request
needs). Built as for WSGI and entered once, the chain does the same work in one hop. The
request still runs in its own thread-sensitive context (Django's ``ASGIHandler.handle``), so
the request signals and the database connection stay on that one thread.
"""

from __future__ import annotations

from typing import Any

import django
from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler


class SyncChainASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def get_response_async(self, request: Any) -> Any:
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)


def get_asgi_application() -> SyncChainASGIHandler:
    """Like ``django.core.asgi.get_asgi_application``, with the synchronous chain."""
    django.setup(set_prefix=False)
    return SyncChainASGIHandler()
