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
    names: set[str] = set()
    original = middleware.RequestContextMiddleware.__call__

    def spy(self, request):  # the outermost middleware
        seen.append(threading.get_ident())
        names.add(threading.current_thread().name)
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
    # A thread of the handler's bounded pool (Django would start a new thread per request).
    assert all(name.startswith("http") for name in names), names
    assert connection.connection is None or connection.is_usable()


@pytest.mark.django_db(transaction=True)
def test_request_signals_run_on_the_request_thread_and_streams_are_closed(monkeypatch):
    """``request_started`` and ``request_finished`` (which hands the database connection back
    to the pool) run on the thread of the request; a streaming response is sent whole and
    closed after it is sent."""
    from django.core import signals
    from django.http import StreamingHttpResponse

    from telemed import middleware

    events: list[tuple[str, int]] = []

    def started(**kwargs):
        events.append(("started", threading.get_ident()))

    def finished(**kwargs):
        events.append(("finished", threading.get_ident()))

    signals.request_started.connect(started)
    signals.request_finished.connect(finished)
    original = middleware.RequestContextMiddleware.__call__
    closed: list[bool] = []

    def spy(self, request):
        events.append(("view", threading.get_ident()))
        if request.path == "/stream":

            async def chunks():
                yield b"a" * 70_000
                yield b"b"

            response = StreamingHttpResponse(chunks())
            response._resource_closers.append(  # type: ignore[attr-defined]
                lambda: closed.append(True)
            )
            return response
        return original(self, request)

    monkeypatch.setattr(middleware.RequestContextMiddleware, "__call__", spy)

    async def run():
        transport = httpx.ASGITransport(app=django_asgi_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await c.get("/api/v1/info"), await c.get("/stream")

    try:
        info, stream = asyncio.run(run())
    finally:
        signals.request_started.disconnect(started)
        signals.request_finished.disconnect(finished)
    assert info.status_code == 200
    first = [name for name, _ in events[:3]]
    assert first == ["started", "view", "finished"], events
    assert len({ident for _, ident in events[:3]}) == 1
    assert stream.content == b"a" * 70_000 + b"b"
    assert closed == [True]
