"""However a socket ends, its cleanup runs once: presence left (the user goes offline and is
told so), the open-sockets gauge decremented, the close counted. A send that finds the
client gone (Uvicorn raises ``ClientDisconnected``, an ``OSError``) or comes after the
server's close (Uvicorn raises ``RuntimeError``) ends the socket; it is not an error."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from channels.db import database_sync_to_async
from uvicorn.protocols.utils import ClientDisconnected

from realtime import consumers, fanout, presence
from realtime.consumers import GatewayConsumer
from realtime.metrics import OPEN_SOCKETS, SOCKET_CLOSES
from tests.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


class Server:
    """The ASGI server's side of one socket, as Uvicorn behaves: after the client is gone a
    send raises ``ClientDisconnected``; after the app's close, ``RuntimeError`` (and the
    disconnection is queued for the app)."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.attempted: list[str] = []  # every message's type, sent or refused
        self.gone = False
        self.closed = False
        self.disconnect_on_close = True  # else the client's answer to the close is awaited

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.attempted.append(message["type"])
        if self.closed:
            raise RuntimeError(
                f"Unexpected ASGI message '{message['type']}', after sending 'websocket.close'."
            )
        if self.gone and message["type"] != "websocket.accept":
            raise ClientDisconnected()
        self.sent.append(message)
        if message["type"] == "websocket.close":
            self.closed = True
            if self.disconnect_on_close:
                self.incoming.put_nowait({"type": "websocket.disconnect", "code": message["code"]})


class Socket:
    def __init__(self, user: Any) -> None:
        self.user = user
        self.server = Server()
        self.task: asyncio.Future[None] | None = None

    async def open(self) -> GatewayConsumer:
        scope = {
            "type": "websocket",
            "path": "/ws/v1/",
            "headers": [],
            "query_string": b"",
            "user": self.user,
            "session_key": None,
            "subprotocols": [],
        }
        app = GatewayConsumer.as_asgi()
        self.task = asyncio.ensure_future(app(scope, self.server.receive, self.server.send))
        await self.server.incoming.put({"type": "websocket.connect"})
        for _ in range(100):
            mine = [c for c in fanout.local_sockets() if c.user_id == str(self.user.pk)]
            if mine and mine[0].authenticated and await online(self.user):
                return mine[0]
            await asyncio.sleep(0.05)
        raise AssertionError("the socket did not open")

    async def ended(self) -> None:
        assert self.task is not None
        await asyncio.wait_for(self.task, 5)  # raises whatever ended the consumer


def closes(code: str) -> float:
    return SOCKET_CLOSES.labels(code)._value.get()


async def online(user: Any) -> bool:
    found = await database_sync_to_async(presence.online)([user.pk])
    return bool(found[str(user.pk)])


def socket_errors(caplog: Any) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_client_gone_mid_reply_ends_the_socket_with_its_cleanup(caplog):
    user = await database_sync_to_async(make_user)()
    gauge, abnormal = OPEN_SOCKETS._value.get(), closes("1006")
    socket = Socket(user)
    await socket.open()
    assert OPEN_SOCKETS._value.get() == gauge + 1 and await online(user)

    # The connection drops while the reply is made: the reply's send raises.
    socket.server.gone = True
    await socket.server.incoming.put(
        {"type": "websocket.receive", "text": '{"type": "resume", "after": 0}'}
    )
    await socket.ended()

    assert not await online(user)
    assert OPEN_SOCKETS._value.get() == gauge
    assert closes("1006") == abnormal + 1
    assert fanout.local_sockets() == []
    assert socket_errors(caplog) == []


async def test_a_client_gone_before_a_push_ends_the_socket_with_its_cleanup(caplog):
    user = await database_sync_to_async(make_user)()
    gauge = OPEN_SOCKETS._value.get()
    socket = Socket(user)
    consumer = await socket.open()

    socket.server.gone = True
    consumer.inbox.put_nowait({"type": "event.push", "id": None, "text": '{"type": "x"}'})
    await socket.ended()

    assert not await online(user)
    assert OPEN_SOCKETS._value.get() == gauge
    assert socket_errors(caplog) == []


async def test_a_reply_after_the_servers_close_ends_the_socket_with_its_cleanup(
    monkeypatch, caplog
):
    """All of the process's sockets are closed (1012) while a handler works: its reply comes
    after the close, and the socket ends, its close counted as the server made it."""
    user = await database_sync_to_async(make_user)()
    working, release = threading.Event(), threading.Event()

    def slow(*, user: Any, content: Any) -> dict[str, Any]:
        working.set()
        release.wait(5)
        return {"type": "test.reply"}

    monkeypatch.setitem(consumers.HANDLERS, "test.slow", slow)
    gauge, restarts = OPEN_SOCKETS._value.get(), closes("1012")
    socket = Socket(user)
    consumer = await socket.open()

    await socket.server.incoming.put({"type": "websocket.receive", "text": '{"type": "test.slow"}'})
    assert await asyncio.to_thread(working.wait, 5)
    await fanout.close_all(fanout.CLOSE_SERVICE_RESTART)
    assert consumer.closing
    release.set()
    await socket.ended()

    assert not await online(user)
    assert OPEN_SOCKETS._value.get() == gauge
    assert closes("1012") == restarts + 1
    assert socket_errors(caplog) == []


async def test_a_push_after_a_close_of_all_sockets_is_not_sent(caplog):
    user = await database_sync_to_async(make_user)()
    gauge = OPEN_SOCKETS._value.get()
    socket = Socket(user)
    socket.server.disconnect_on_close = False
    consumer = await socket.open()

    # The close is sent from the fan-out's task; a push comes before the client's answer.
    await fanout.close_all(fanout.CLOSE_SERVICE_RESTART)
    consumer.inbox.put_nowait({"type": "event.push", "id": None, "text": '{"type": "x"}'})
    await asyncio.sleep(0.2)
    assert socket.server.attempted[-1] == "websocket.close"
    await socket.server.incoming.put({"type": "websocket.disconnect", "code": 1012})
    await socket.ended()

    assert socket.server.attempted[-1] == "websocket.close"
    assert OPEN_SOCKETS._value.get() == gauge
    assert socket_errors(caplog) == []


async def test_a_socket_closed_by_its_client_is_cleaned_up_once():
    user = await database_sync_to_async(make_user)()
    gauge, normal = OPEN_SOCKETS._value.get(), closes("1000")
    socket = Socket(user)
    await socket.open()

    await socket.server.incoming.put({"type": "websocket.disconnect", "code": 1000})
    await socket.ended()

    assert not await online(user)
    assert OPEN_SOCKETS._value.get() == gauge
    assert closes("1000") == normal + 1


async def test_a_cancelled_socket_is_cleaned_up_once():
    """The server cancels the app's task (a shutdown): the cleanup still runs to its end."""
    user = await database_sync_to_async(make_user)()
    gauge, abnormal = OPEN_SOCKETS._value.get(), closes("1006")
    socket = Socket(user)
    await socket.open()

    assert socket.task is not None
    socket.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await socket.ended()
    for _ in range(100):  # the cleanup goes on beside the cancelled task
        if not await online(user):
            break
        await asyncio.sleep(0.05)

    assert not await online(user)
    assert OPEN_SOCKETS._value.get() == gauge
    assert closes("1006") == abnormal + 1
