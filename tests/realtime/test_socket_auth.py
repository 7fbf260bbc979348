"""Socket authentication (tickets, JWT) and bad input on an open socket."""

from __future__ import annotations

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from telemed.asgi import application
from tests.factories import bearer, make_user, post
from tests.realtime.conftest import access_token, open_socket, ticket_for

pytestmark = pytest.mark.django_db(transaction=True)

CLOSED_4401 = {"type": "websocket.close", "code": 4401}


async def closed_with(path: str, headers: list | None = None) -> dict:
    ws = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await ws.connect()
    assert connected  # accepted, then closed, so that the client sees the code
    out = await ws.receive_output(timeout=5)
    await ws.disconnect()
    return out


async def test_a_ticket_opens_the_socket_once():
    user = await database_sync_to_async(make_user)()
    ticket = await database_sync_to_async(ticket_for)(user)
    ws = WebsocketCommunicator(application, f"/ws/v1/?ticket={ticket}")
    assert (await ws.connect())[0]
    await ws.send_json_to({"type": "resume", "after": 0})
    assert (await ws.receive_json_from(timeout=5))["type"] == "resume.done"
    await ws.disconnect()

    assert await closed_with(f"/ws/v1/?ticket={ticket}") == CLOSED_4401  # reused


@pytest.mark.parametrize("ticket", ["", "nope", "x" * 500])
async def test_bad_tickets_are_4401(ticket):
    assert await closed_with(f"/ws/v1/?ticket={ticket}") == CLOSED_4401


async def test_an_expired_ticket_is_4401(settings):
    settings.REALTIME_TICKET_SECONDS = 1
    user = await database_sync_to_async(make_user)()
    ticket = await database_sync_to_async(ticket_for)(user)
    await asyncio.sleep(1.6)
    assert await closed_with(f"/ws/v1/?ticket={ticket}") == CLOSED_4401


async def test_a_ticket_of_a_deactivated_user_is_4403():
    user = await database_sync_to_async(make_user)()
    ticket = await database_sync_to_async(ticket_for)(user)
    user.is_active = False
    await database_sync_to_async(user.save)()
    assert await closed_with(f"/ws/v1/?ticket={ticket}") == {
        "type": "websocket.close",
        "code": 4403,
    }


async def test_an_expired_jwt_is_4401(settings):
    settings.HEADLESS_JWT_ACCESS_TOKEN_EXPIRES_IN = 1
    user = await database_sync_to_async(make_user)()
    token = await database_sync_to_async(access_token)(user)
    await asyncio.sleep(2.1)
    headers = [(b"authorization", f"Bearer {token}".encode())]
    assert await closed_with("/ws/v1/", headers) == CLOSED_4401


async def test_a_staff_token_opens_a_socket_only_once_its_session_passed_the_second_factor():
    from django.test import Client

    from tests.factories import login, pass_second_factor

    staff = await database_sync_to_async(make_user)(role="admin", is_staff=True)
    client = Client()
    token = (await database_sync_to_async(login)(client, staff.email, second_factor=False))[
        "access"
    ]
    headers = [(b"authorization", f"Bearer {token}".encode())]
    assert await closed_with("/ws/v1/", headers) == CLOSED_4401
    r = await database_sync_to_async(post)(Client(), "/api/v1/realtime/ticket", **bearer(token))
    assert r.json()["error"]["code"] == "auth.second_factor_required"  # no ticket either

    await database_sync_to_async(pass_second_factor)(client, staff, token)
    ws = WebsocketCommunicator(application, "/ws/v1/", headers=headers)
    assert (await ws.connect())[0]
    await ws.send_json_to({"type": "resume", "after": 0})
    assert (await ws.receive_json_from(timeout=5))["type"] == "resume.done"
    await ws.disconnect()


def test_a_ticket_needs_authentication(api):
    r = api.post("/api/v1/realtime/ticket")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "auth.unauthenticated"


async def test_garbage_frames_get_error_events_and_the_socket_stays_up(settings):
    settings.REALTIME_MAX_MESSAGE_BYTES = 1000
    user = await database_sync_to_async(make_user)(language="ar")
    ws = await open_socket(user)
    frames = [
        ("{not json", "realtime.malformed"),
        ("[1, 2]", "realtime.malformed"),
        ('"text"', "realtime.malformed"),
        ("\x00\xff", "realtime.malformed"),
        ('{"type": "no.such"}', "realtime.unknown_type"),
        ('{"type": 5}', "realtime.unknown_type"),
        ('{"no": "type"}', "realtime.unknown_type"),
        ('{"type": "resume", "after": "x"}', "realtime.invalid"),
        ('{"type": "resume", "after": -1}', "realtime.invalid"),
        ('{"type": "resume", "after": true}', "realtime.invalid"),
        ('{"type": "x", "pad": "' + "a" * 2000 + '"}', "realtime.too_large"),
    ]
    for frame, code in frames:
        await ws.send_to(text_data=frame)
        reply = await ws.receive_json_from(timeout=5)
        assert reply["type"] == "error", frame
        assert reply["error"]["code"] == code, frame
    assert reply["error"]["message"] == "هذه الرسالة كبيرة جدًا."  # the user's language
    await ws.send_to(bytes_data=b"\x80\x81")
    assert (await ws.receive_json_from(timeout=5))["error"]["code"] == "realtime.malformed"
    # Still open and working.
    await ws.send_json_to({"type": "resume", "after": 0})
    assert await ws.receive_json_from(timeout=5) == {
        "type": "resume.done",
        "data": {"last": 0, "more": False},
    }
    await ws.disconnect()


async def test_a_flood_is_rate_limited_then_closed(settings):
    settings.REALTIME_MESSAGE_BURST = 5
    settings.REALTIME_MESSAGES_PER_SECOND = 1
    settings.REALTIME_FLOOD_CLOSE_AFTER = 20
    user = await database_sync_to_async(make_user)()
    ws = await open_socket(user)
    for _ in range(5):
        await ws.send_json_to({"type": "presence.ping"})
    await ws.send_json_to({"type": "presence.ping"})
    reply = await ws.receive_json_from(timeout=5)
    assert reply["error"]["code"] == "realtime.rate_limited"
    for _ in range(25):
        await ws.send_json_to({"type": "presence.ping"})
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4429}
    await ws.disconnect()


async def test_handlers_registered_by_domain_apps_answer_on_the_socket():
    from realtime.consumers import HANDLERS
    from realtime.errors import InvalidMessage

    def echo(*, user, content):
        if "text" not in content:
            raise InvalidMessage(fields={"text": "required"})
        return {"type": "test.echoed", "data": {"user": str(user.pk), "text": content["text"]}}

    user = await database_sync_to_async(make_user)()
    HANDLERS["test.echo"] = echo
    try:
        ws = await open_socket(user)
        await ws.send_json_to({"type": "test.echo", "text": "hi"})
        assert await ws.receive_json_from(timeout=5) == {
            "type": "test.echoed",
            "data": {"user": str(user.pk), "text": "hi"},
        }
        await ws.send_json_to({"type": "test.echo"})
        reply = await ws.receive_json_from(timeout=5)
        assert reply["error"]["code"] == "realtime.invalid"
        assert reply["error"]["fields"] == {"text": "required"}
        await ws.disconnect()
    finally:
        del HANDLERS["test.echo"]


async def test_socket_threads_run_the_handlers_when_set(settings):
    """``SOCKET_THREADS``: the registered handlers run on that many threads of their own."""
    import threading

    from realtime import consumers

    settings.SOCKET_THREADS = 1

    def where(*, user, content):
        return {"type": "test.where", "data": {"thread": threading.current_thread().name}}

    user = await database_sync_to_async(make_user)()
    consumers.HANDLERS["test.where"] = where
    try:
        ws = await open_socket(user)
        for _ in range(2):
            await ws.send_json_to({"type": "test.where"})
            reply = await ws.receive_json_from(timeout=5)
            assert reply["data"]["thread"].startswith("socket_"), reply
        await ws.disconnect()
    finally:
        del consumers.HANDLERS["test.where"]
        consumers._handler_pool(1).shutdown(wait=False)
        consumers._handler_pool.cache_clear()
