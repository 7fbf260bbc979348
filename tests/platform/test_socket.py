import asyncio

import pytest
import websockets
from channels.testing import WebsocketCommunicator

from telemed.asgi import application


async def test_unauthenticated_socket_is_accepted_then_closed_4401():
    communicator = WebsocketCommunicator(application, "/ws/v1/")
    connected, _ = await communicator.connect()
    assert connected
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4401}
    await communicator.disconnect()


async def test_foreign_origin_is_refused():
    communicator = WebsocketCommunicator(
        application, "/ws/v1/", headers=[(b"origin", b"https://evil.example.com")]
    )
    connected, _ = await communicator.connect()
    assert not connected
    await communicator.disconnect()


async def test_own_origin_reaches_authentication():
    communicator = WebsocketCommunicator(
        application, "/ws/v1/", headers=[(b"origin", b"http://localhost:8000")]
    )
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_output())["code"] == 4401
    await communicator.disconnect()


async def test_unknown_socket_path_is_refused():
    communicator = WebsocketCommunicator(application, "/ws/v2/")
    with pytest.raises(ValueError, match="No route found"):
        await communicator.connect()


@pytest.mark.e2e
def test_real_client_against_daphne_sees_4401(live_server_proc):
    async def go():
        async with websockets.connect(live_server_proc.info["ws"] + "/ws/v1/") as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None
            return closed.value.rcvd.code

    assert asyncio.run(go()) == 4401


@pytest.mark.django_db(transaction=True)
async def test_socket_accepts_a_valid_bearer_token_and_refuses_a_bad_one():
    from channels.db import database_sync_to_async
    from django.test import Client

    from tests.factories import login, make_user

    user = await database_sync_to_async(make_user)()
    tokens = await database_sync_to_async(lambda: login(Client(), user.email))()
    ok = WebsocketCommunicator(
        application, "/ws/v1/", headers=[(b"authorization", f"Bearer {tokens['access']}".encode())]
    )
    connected, _ = await ok.connect()
    assert connected
    await ok.send_json_to({"type": "nope"})
    reply = await ok.receive_json_from()
    assert reply["type"] == "error" and reply["error"]["code"] == "realtime.unknown_type"
    await ok.send_to(text_data="{not json")
    assert (await ok.receive_json_from())["error"]["code"] == "realtime.malformed"
    await ok.disconnect()

    bad = WebsocketCommunicator(
        application, "/ws/v1/", headers=[(b"authorization", b"Bearer garbage")]
    )
    connected, _ = await bad.connect()
    assert connected
    assert await bad.receive_output() == {"type": "websocket.close", "code": 4401}
    await bad.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_deactivating_a_user_closes_their_open_sockets():
    from channels.db import database_sync_to_async
    from django.test import Client

    from accounts.models import Role
    from accounts.services import user_set_active
    from tests.factories import login, make_user

    user = await database_sync_to_async(make_user)()
    admin = await database_sync_to_async(make_user)(role=Role.ADMIN)
    tokens = await database_sync_to_async(lambda: login(Client(), user.email))()
    sockets = [
        WebsocketCommunicator(
            application,
            "/ws/v1/",
            headers=[(b"authorization", f"Bearer {tokens['access']}".encode())],
        )
        for _ in range(2)
    ]
    for ws in sockets:
        assert (await ws.connect())[0]
    await asyncio.sleep(0.2)  # the sockets join the fan-out registry after accepting
    await database_sync_to_async(user_set_active)(actor=admin, user=user, active=False)
    for ws in sockets:
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
        await ws.disconnect()
