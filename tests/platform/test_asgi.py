"""The HTTP side of the ASGI application: Django's chain built synchronously, entered once."""

import asyncio
import threading

import httpx
import pytest
from asgiref.sync import iscoroutinefunction
from django.db import connection

from core.asgi import SyncChainASGIHandler
from telemed.asgi import django_asgi_app


def test_the_middleware_chain_is_synchronous():
    assert isinstance(django_asgi_app, SyncChainASGIHandler)
    assert not iscoroutinefunction(vars(django_asgi_app)["_middleware_chain"])


@pytest.mark.django_db(transaction=True)
def test_a_request_runs_its_middleware_and_view_on_one_thread(monkeypatch):
    """Every piece of a request's synchronous work (middleware, view, the database) runs on
    one thread, not the event loop's: the request answers and its connection is cleaned up."""
    from telemed import middleware

    seen: list[int] = []
    original = middleware.RequestContextMiddleware.__call__

    def spy(self, request):  # the outermost middleware
        seen.append(threading.get_ident())
        response = original(self, request)
        seen.append(threading.get_ident())
        return response

    monkeypatch.setattr(middleware.RequestContextMiddleware, "__call__", spy)

    async def run() -> tuple[int, int, int]:
        transport = httpx.ASGITransport(app=django_asgi_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            info = await c.get("/api/v1/info")
            missing = await c.get("/api/v1/nope", headers={"Accept-Language": "ar"})
            return info.status_code, missing.status_code, threading.get_ident()

    info, missing, loop_thread = asyncio.run(run())
    assert (info, missing) == (200, 404)
    assert len(seen) == 4 and seen[0] == seen[1] and seen[2] == seen[3]
    assert loop_thread not in seen
    assert connection.connection is None or connection.is_usable()
