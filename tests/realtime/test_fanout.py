"""A notification to many users: stored with each user's next event id, and pushed to every
socket of every recipient (one channel-layer message per batch, handed to local sockets by
each process's registry)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction

from realtime import fanout
from realtime.services import close_user_sockets, notify
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


async def assert_notified(ws, user) -> None:
    """A notification to ``user`` now reaches this socket."""
    title = f"hello {id(ws)}"
    await database_sync_to_async(notify)(
        users=[user], kind="notification.created", data={}, render=lambda u: (title, "")
    )
    assert (await receive_type(ws, "notification.created"))["data"]["title"] == title


def _count_layer_messages(monkeypatch) -> list[dict]:
    """Every message published to the server processes from now on (still sent)."""
    sent: list[dict] = []
    original = fanout.publish_from_thread

    def spy(messages, layer=None):
        sent.extend(messages)
        original(messages, layer)

    monkeypatch.setattr(fanout, "publish_from_thread", spy)
    return sent


async def test_a_fan_out_is_one_layer_message_and_reaches_only_the_online_recipients(monkeypatch):
    users = [await database_sync_to_async(make_user)() for _ in range(3)]
    offline = [await database_sync_to_async(make_user)() for _ in range(40)]
    bystander = await database_sync_to_async(make_user)()
    sockets = [await open_socket(u) for u in [*users, bystander]]
    sent = _count_layer_messages(monkeypatch)

    await database_sync_to_async(notify)(
        users=[*users, *offline], kind="notification.created", data={}, render=lambda u: ("a", "")
    )
    for ws in sockets[:3]:
        assert (await receive_type(ws, "notification.created"))["id"] == 1
    assert await sockets[3].receive_nothing(timeout=0.3)
    assert len(sent) == 1
    assert len(sent[0]["events"]) == 43  # offline users travel as ids, nobody's socket gets them
    for ws in sockets:
        await ws.disconnect()


async def test_an_oversized_batch_goes_in_chunks_and_every_recipient_gets_theirs(monkeypatch):
    monkeypatch.setattr(fanout, "CHUNK_BYTES", 4000)
    users = [await database_sync_to_async(make_user)() for _ in range(6)]
    sockets = [await open_socket(u) for u in users]
    sent = _count_layer_messages(monkeypatch)
    body = "x" * 1500

    await database_sync_to_async(notify)(
        users=users, kind="notification.created", data={}, render=lambda u: ("big", body)
    )
    for ws in sockets:
        event = await receive_type(ws, "notification.created")
        assert event["data"] == {"title": "big", "body": body}
    assert len(sent) == 3  # two 1.6 KB events per 4 KB message
    for ws in sockets:
        await ws.disconnect()


def test_batches_keep_the_order_share_one_text_per_event_and_fit_the_chunk(monkeypatch):
    monkeypatch.setattr(fanout, "CHUNK_BYTES", 1000)
    shared: dict[str, Any] = {"type": "chat.typing", "data": {"n": 0}}
    pushes: list[tuple[str, dict[str, Any]]] = [(f"u{i}", shared) for i in range(30)]
    pushes += [(f"u{i}", {"type": "notification.created", "id": i, "data": {}}) for i in range(40)]
    messages = fanout.event_batches(pushes)

    flat = [
        (user_id, event_id, json.loads(text))
        for message in messages
        for user_ids, event_id, text in message["events"]
        for user_id in user_ids
    ]
    assert flat == [(u, e.get("id"), e) for u, e in pushes]
    texts = [text for message in messages for _, _, text in message["events"]]
    assert texts.count(json.dumps(shared)) == 2  # its 30 users in two runs (a run fits a chunk)
    layer = get_channel_layer()
    assert all(len(layer.serialize(m)) <= 1000 for m in messages)
    assert len(messages) > 2


async def test_closing_a_users_sockets_closes_each_device_and_no_one_elses():
    user, other = [await database_sync_to_async(make_user)() for _ in range(2)]
    devices = [await open_socket(user) for _ in range(2)]
    other_ws = await open_socket(other)

    def close() -> None:
        with transaction.atomic():
            close_user_sockets(user_id=user.pk)

    await database_sync_to_async(close)()
    for ws in devices:
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 4403}
        await ws.disconnect()
    await assert_notified(other_ws, other)
    await other_ws.disconnect()


async def test_the_listener_stops_with_the_last_socket_and_starts_again_with_the_next():
    user = await database_sync_to_async(make_user)()
    ws = await open_socket(user)
    assert fanout.local_sockets()
    await ws.disconnect()
    assert fanout.local_sockets() == []
    assert fanout._hub().listener is None

    ws = await open_socket(user)
    await assert_notified(ws, user)
    await ws.disconnect()


async def test_a_failed_listener_closes_the_sockets_1012_and_the_next_socket_gets_events():
    user = await database_sync_to_async(make_user)()
    ws = await open_socket(user)
    await get_channel_layer().group_send(fanout.GROUP, {"type": "fanout.events"})  # no events
    assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 1012}
    await ws.disconnect()

    ws = await open_socket(user)
    await assert_notified(ws, user)
    await ws.disconnect()


async def test_the_in_memory_layer_of_make_run_delivers_too(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    users = [await database_sync_to_async(make_user)() for _ in range(2)]
    sockets = [await open_socket(u) for u in users]
    await database_sync_to_async(notify)(
        users=users[:1], kind="notification.created", data={}, render=lambda u: ("local", "")
    )
    assert (await receive_type(sockets[0], "notification.created"))["data"]["title"] == "local"
    assert await sockets[1].receive_nothing(timeout=0.3)
    for ws in sockets:
        await ws.disconnect()


async def test_a_publish_from_a_thread_is_one_redis_publish_that_the_layer_receives():
    """Services publish after commit from a thread, without a hop to the event loop: with the
    Redis pub/sub layer it is a PUBLISH on the group's channel, which the layer's subscribers
    (every process's listener) receive as if ``group_send`` had sent it."""
    import asyncio

    from channels.layers import InMemoryChannelLayer

    layer = get_channel_layer()
    assert callable(fanout._sync_sender(layer))
    assert fanout._sync_sender(InMemoryChannelLayer()) is None
    channel = await layer.new_channel()
    await layer.group_add(fanout.GROUP, channel)
    try:
        message = {"type": "fanout.events", "events": [[["nobody"], 7, '{"type": "x"}']]}
        await asyncio.to_thread(fanout.publish_from_thread, [message, {**message, "n": 2}])
        assert await asyncio.wait_for(layer.receive(channel), 5) == message
        assert (await asyncio.wait_for(layer.receive(channel), 5))["n"] == 2  # in order
    finally:
        await layer.group_discard(fanout.GROUP, channel)


def test_a_publish_to_a_redis_that_hangs_costs_one_timeout_then_fails_at_once():
    """Services publish after commit on the request's thread: a Redis that accepts and never
    answers must cost a timeout (not a wait without end), then fail at once while the
    circuit breaker is open (core/redis_breaker.py), as the cache's calls do."""
    import socket
    from concurrent.futures import ThreadPoolExecutor

    import redis
    from channels_redis.pubsub import RedisPubSubChannelLayer

    from core.redis_breaker import BreakerOpen

    pool: ThreadPoolExecutor | None = None
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)  # the kernel completes the handshakes; nothing ever answers
    try:
        layer = RedisPubSubChannelLayer(
            hosts=[{"address": f"redis://127.0.0.1:{hung.getsockname()[1]}/0"}], prefix="hang"
        )
        message = {"type": "fanout.events", "events": [[["nobody"], 1, "{}"]]}
        pool = ThreadPoolExecutor(1)
        first = pool.submit(fanout.publish_from_thread, [message], layer)
        with pytest.raises(redis.RedisError):
            first.result(timeout=30)
        with pytest.raises(BreakerOpen):
            pool.submit(fanout.publish_from_thread, [message], layer).result(timeout=30)
    finally:
        hung.close()  # resets a connection still waiting
        if pool is not None:
            pool.shutdown(wait=False)
