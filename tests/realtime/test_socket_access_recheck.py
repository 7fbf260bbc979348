"""The close that ends a user's access is pushed once, after commit, and may be lost (Redis
away at that moment, a process killed in between): an open socket's credential is checked
again on every ``resume`` and, after ``REALTIME_ACCESS_CHECK_SECONDS``, when it sends or
receives; one that no longer holds closes the socket 4403."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from accounts.services import user_set_active
from realtime import fanout
from realtime.services import notify
from telemed.asgi import application
from tests.factories import AUTH, bearer, login, make_user
from tests.realtime.conftest import open_socket, receive_type

pytestmark = pytest.mark.django_db(transaction=True)

CLOSED_4403 = {"type": "websocket.close", "code": 4403}


def _lose_pushes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every push after commit fails, as with Redis away (the services log it and go on)."""

    def publish(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("Redis away")

    monkeypatch.setattr(fanout, "publish_from_thread", publish)


async def _deactivated(user: Any) -> None:
    admin = await database_sync_to_async(make_user)(role="admin")
    await database_sync_to_async(user_set_active)(actor=admin, user=user, active=False)


async def test_a_resume_after_a_lost_close_closes_the_socket(monkeypatch, settings):
    settings.REALTIME_ACCESS_CHECK_SECONDS = 3600  # a resume checks whatever the interval
    user = await database_sync_to_async(make_user)()
    ws = await open_socket(user)
    try:
        _lose_pushes(monkeypatch)
        await _deactivated(user)
        assert await ws.receive_nothing(timeout=0.3)  # the close was lost: still open
        await ws.send_json_to({"type": "resume", "after": 0})
        assert await ws.receive_output(timeout=5) == CLOSED_4403
    finally:
        await ws.disconnect()


async def test_a_frame_after_the_interval_closes_the_socket_of_a_logged_out_session(settings):
    user = await database_sync_to_async(make_user)()
    tokens = await database_sync_to_async(login)(Client(), user.email)
    ws = WebsocketCommunicator(
        application, "/ws/v1/", headers=[(b"authorization", f"Bearer {tokens['access']}".encode())]
    )
    assert (await ws.connect())[0]
    await asyncio.sleep(0.3)  # accepted first; admitted once it has joined the fan-out
    try:
        settings.REALTIME_ACCESS_CHECK_SECONDS = 3600
        with pytest.MonkeyPatch.context() as patch:
            _lose_pushes(patch)

            def logout() -> None:
                r = Client().delete(f"{AUTH}/auth/session", headers=bearer(tokens["access"]))
                assert r.status_code == 401

            await database_sync_to_async(logout)()
        await ws.send_json_to({"type": "presence.ping"})
        assert await ws.receive_nothing(timeout=0.5)  # within the interval: not checked
        settings.REALTIME_ACCESS_CHECK_SECONDS = 0
        await ws.send_json_to({"type": "presence.ping"})
        assert await ws.receive_output(timeout=5) == CLOSED_4403
    finally:
        await ws.disconnect()


async def test_a_push_after_the_interval_closes_the_socket_of_a_deactivated_user(
    monkeypatch, settings
):
    user = await database_sync_to_async(make_user)()
    ws = await open_socket(user)
    try:
        with pytest.MonkeyPatch.context() as patch:
            _lose_pushes(patch)
            await _deactivated(user)
        settings.REALTIME_ACCESS_CHECK_SECONDS = 0
        await database_sync_to_async(notify)(
            users=[user], kind="test.kind", data={}, render=lambda u: ("t", "b")
        )
        while True:  # the push may go out while its check runs; the close follows
            out = await ws.receive_output(timeout=5)
            if out["type"] == "websocket.close":
                break
        assert out == CLOSED_4403
    finally:
        await ws.disconnect()


async def test_a_bearer_socket_outlives_its_access_token_not_its_session(monkeypatch, settings):
    """Checked again, a bearer socket's session is what counts: the access token's few
    minutes may be over (here: every token now fails to validate)."""
    import accounts.tokens_validation as tokens_validation

    user = await database_sync_to_async(make_user)()
    tokens = await database_sync_to_async(login)(Client(), user.email)
    ws = WebsocketCommunicator(
        application, "/ws/v1/", headers=[(b"authorization", f"Bearer {tokens['access']}".encode())]
    )
    assert (await ws.connect())[0]
    await asyncio.sleep(0.3)  # accepted first; admitted once it has joined the fan-out
    try:
        monkeypatch.setattr(tokens_validation, "validate_access_token", lambda token: None)
        settings.REALTIME_ACCESS_CHECK_SECONDS = 0
        await ws.send_json_to({"type": "resume", "after": 0})
        assert (await receive_type(ws, "resume.done"))["data"]["last"] == 0
    finally:
        await ws.disconnect()


async def test_a_ticket_while_redis_is_away_is_4401_not_a_server_error(settings):
    from tests.platform.test_redis_down import redis_away
    from tests.realtime.conftest import ticket_for

    user = await database_sync_to_async(make_user)()
    ticket = await database_sync_to_async(ticket_for)(user)
    redis_away(settings)
    ws = WebsocketCommunicator(application, f"/ws/v1/?ticket={ticket}")
    try:
        assert (await ws.connect())[0]
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    finally:
        await ws.disconnect()
