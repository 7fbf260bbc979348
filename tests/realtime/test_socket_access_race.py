"""A socket whose user loses access between the handshake's check and its joining the
fan-out (where a close of the user's sockets would find it) is closed all the same; and a
socket told to close handles no frame after that."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.models import User
from accounts.services import user_set_active
from realtime import consumers, fanout
from telemed.asgi import application
from tests.factories import AUTH, bearer, login, make_user, post

pytestmark = pytest.mark.django_db(transaction=True)

CLOSED_4403 = {"type": "websocket.close", "code": 4403}


def _tokens(user: User) -> dict[str, str]:
    return login(Client(), user.email)


def _ticket(token: str) -> str:
    r = post(Client(), "/api/v1/realtime/ticket", **bearer(token))
    assert r.status_code == 201, r.content
    return str(r.json()["ticket"])


def _before_join(monkeypatch: pytest.MonkeyPatch, change: Any) -> list[str]:
    """Run ``change`` (in a thread) just before the socket really joins the fan-out: its
    close of the user's sockets goes out while this socket is not registered yet."""
    real_join = fanout.join
    done: list[str] = []

    async def join(consumer: Any) -> None:
        if not done:
            await database_sync_to_async(change)()
            await asyncio.sleep(0.2)  # the close batch has come and gone
            done.append(consumer.user_id)
        await real_join(consumer)

    monkeypatch.setattr(fanout, "join", join)
    return done


async def _opened(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    ws = WebsocketCommunicator(application, path, headers=headers or [])
    assert (await ws.connect())[0]
    return ws


@pytest.mark.parametrize("credential", ["bearer", "ticket"])
async def test_a_deactivation_while_the_socket_joins_closes_it(monkeypatch, credential):
    user = await database_sync_to_async(make_user)()
    admin = await database_sync_to_async(make_user)(role="admin")
    tokens = await database_sync_to_async(_tokens)(user)
    done = _before_join(monkeypatch, lambda: user_set_active(actor=admin, user=user, active=False))
    if credential == "bearer":
        ws = await _opened("/ws/v1/", [(b"authorization", f"Bearer {tokens['access']}".encode())])
    else:
        ticket = await database_sync_to_async(_ticket)(tokens["access"])
        ws = await _opened(f"/ws/v1/?ticket={ticket}")
    try:
        assert await ws.receive_output(timeout=5) == CLOSED_4403
        assert done == [str(user.pk)]
    finally:
        await ws.disconnect()


@pytest.mark.parametrize("credential", ["bearer", "ticket"])
async def test_a_logout_while_the_socket_joins_closes_it(monkeypatch, credential):
    user = await database_sync_to_async(make_user)()
    tokens = await database_sync_to_async(_tokens)(user)

    def logout() -> None:
        r = Client().delete(f"{AUTH}/auth/session", headers=bearer(tokens["access"]))
        assert r.status_code == 401  # logged out

    _before_join(monkeypatch, logout)
    if credential == "bearer":
        ws = await _opened("/ws/v1/", [(b"authorization", f"Bearer {tokens['access']}".encode())])
    else:  # the session the ticket was asked in is checked again
        ticket = await database_sync_to_async(_ticket)(tokens["access"])
        ws = await _opened(f"/ws/v1/?ticket={ticket}")
    try:
        assert await ws.receive_output(timeout=5) == CLOSED_4403
    finally:
        await ws.disconnect()


async def test_a_socket_that_keeps_its_access_is_not_closed(monkeypatch):
    user = await database_sync_to_async(make_user)()
    tokens = await database_sync_to_async(_tokens)(user)
    _before_join(monkeypatch, lambda: None)
    ws = await _opened("/ws/v1/", [(b"authorization", f"Bearer {tokens['access']}".encode())])
    try:
        await ws.send_json_to({"type": "resume", "after": 0})
        assert (await ws.receive_json_from(timeout=5))["type"] == "resume.done"
    finally:
        await ws.disconnect()


async def test_frames_after_a_session_close_are_not_handled(monkeypatch):
    """``session.close`` and a client frame can be queued together: once told to close, the
    socket handles nothing more (a deactivated user's chat.send must not be stored)."""
    handled: list[Any] = []
    monkeypatch.setitem(
        consumers.HANDLERS, "test.probe", lambda *, user, content: handled.append(content)
    )
    consumer = consumers.GatewayConsumer()
    consumer.authenticated = True
    consumer.closing = False
    consumer.language = "en"
    consumer.user = None
    consumer.bucket = consumers._Bucket(10, 30)
    consumer.strikes = 0
    consumer.checked_at = time.monotonic()
    sent: list[Any] = []

    async def close(code: int | None = None, reason: Any = None) -> None:
        sent.append(code)

    monkeypatch.setattr(consumer, "close", close)
    await consumer.receive(text_data='{"type": "test.probe"}')
    assert len(handled) == 1
    await consumer.session_close({"type": "session.close", "code": 4403})
    await consumer.receive(text_data='{"type": "test.probe"}')
    assert len(handled) == 1 and sent == [4403]


async def test_a_push_to_a_socket_refused_at_its_admission_is_dropped(monkeypatch):
    """A socket closed 4403 at its admission stays in the registry until its disconnection
    is handled: a push meanwhile must not end its task with an error."""
    from realtime.services import notify

    user = await database_sync_to_async(make_user)()
    admin = await database_sync_to_async(make_user)(role="admin")
    tokens = await database_sync_to_async(_tokens)(user)
    _before_join(monkeypatch, lambda: user_set_active(actor=admin, user=user, active=False))
    ws = await _opened("/ws/v1/", [(b"authorization", f"Bearer {tokens['access']}".encode())])
    try:
        assert await ws.receive_output(timeout=5) == CLOSED_4403
        await database_sync_to_async(notify)(
            users=[user], kind="test.kind", data={}, render=lambda u: ("t", "b")
        )
        await asyncio.sleep(0.3)
        assert await ws.receive_nothing(timeout=0.3)
        assert not ws.future.done()  # the consumer's task did not die
    finally:
        await ws.disconnect()
