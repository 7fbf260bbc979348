"""A user's stored events reach an open socket in id order and each once, though their
pushes travel apart and one may be lost: an event above the next id expected is sent after
those in between (read from the database); a push that comes after them is dropped."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async

from realtime import fanout
from realtime.services import notify
from tests.factories import make_user
from tests.realtime.conftest import open_socket

pytestmark = pytest.mark.django_db(transaction=True)


def _notify(user: Any, n: int) -> None:
    notify(users=[user], kind="test.gap", data={"n": n}, render=lambda u: (f"t{n}", "b"))


async def _ids(ws: Any, count: int) -> list[int]:
    ids: list[int] = []
    while len(ids) < count:
        event = await ws.receive_json_from(timeout=5)
        if event["type"] == "test.gap":
            assert event["data"]["n"] == event["id"]
            ids.append(event["id"])
    return ids


async def test_a_lost_push_is_sent_before_the_next_one(monkeypatch):
    user = await database_sync_to_async(make_user)()
    ws = await open_socket(user)
    try:
        with pytest.MonkeyPatch.context() as patch:

            def lost(*args: Any, **kwargs: Any) -> None:
                raise ConnectionError("Redis away")

            patch.setattr(fanout, "publish_from_thread", lost)
            await database_sync_to_async(_notify)(user, 1)
        assert await ws.receive_nothing(timeout=0.3)
        await database_sync_to_async(_notify)(user, 2)
        assert await _ids(ws, 2) == [1, 2]
        assert await ws.receive_nothing(timeout=0.3)
    finally:
        await ws.disconnect()


async def test_pushes_that_arrive_out_of_order_are_sent_in_order_and_once(monkeypatch):
    user = await database_sync_to_async(make_user)()
    ws = await open_socket(user)
    held: list[list[dict[str, Any]]] = []
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(fanout, "publish_from_thread", lambda messages: held.append(messages))
            for n in (1, 2, 3):
                await database_sync_to_async(_notify)(user, n)
        assert len(held) == 3
        for messages in (held[2], held[0], held[1]):  # 3 first, then 1 and 2
            await fanout.publish(messages)
        assert await _ids(ws, 3) == [1, 2, 3]
        assert await ws.receive_nothing(timeout=0.3)  # the late pushes of 1 and 2: dropped
        await database_sync_to_async(_notify)(user, 4)
        assert await _ids(ws, 1) == [4]
    finally:
        await ws.disconnect()


async def test_a_gap_larger_than_a_resume_closes_the_socket_for_the_client_to_resume(
    monkeypatch, settings
):
    settings.REALTIME_RESUME_LIMIT = 2
    user = await database_sync_to_async(make_user)()
    ws = await open_socket(user)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(fanout, "publish_from_thread", lambda messages: None)  # all lost
            for n in (1, 2, 3, 4):
                await database_sync_to_async(_notify)(user, n)
        await database_sync_to_async(_notify)(user, 5)
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 1012}
    finally:
        await ws.disconnect()
