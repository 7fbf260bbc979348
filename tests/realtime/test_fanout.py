"""A notification to many users: stored with each user's next event id, and pushed to every
socket of every recipient (in one pipelined trip to Redis)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.db import transaction

from realtime.services import notify
from tests.factories import make_user
from tests.realtime.conftest import open_socket, receive_type

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_fan_out_reaches_every_device_of_every_recipient_with_their_ids():
    users = [await database_sync_to_async(make_user)() for _ in range(6)]
    bystander = await database_sync_to_async(make_user)()
    sockets = [await open_socket(u, settle=0) for u in users]
    second_device = await open_socket(users[0], settle=0)
    bystander_ws = await open_socket(bystander)

    def send() -> None:
        with transaction.atomic():
            notify(
                users=users[:1], kind="notification.created", data={}, render=lambda u: ("a", "")
            )
            notify(
                users=users, kind="notification.created", data={"n": 2}, render=lambda u: ("b", "")
            )

    await database_sync_to_async(send)()
    for i, ws in enumerate(sockets):
        if i == 0:
            assert (await receive_type(ws, "notification.created"))["id"] == 1
        event = await receive_type(ws, "notification.created")
        assert event == {
            "type": "notification.created",
            "id": 2 if i == 0 else 1,
            "data": {"n": 2, "title": "b", "body": ""},
        }
    assert (await receive_type(second_device, "notification.created"))["id"] == 1
    assert (await receive_type(second_device, "notification.created"))["id"] == 2
    assert await bystander_ws.receive_nothing(timeout=0.5)
    for ws in [*sockets, second_device, bystander_ws]:
        await ws.disconnect()
