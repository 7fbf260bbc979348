"""When the channel layer's Redis goes away, sockets are closed so clients reconnect and
resume (the pub/sub layer would otherwise drop events silently)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from tests.factories import make_user
from tests.realtime.conftest import open_socket

pytestmark = pytest.mark.django_db(transaction=True)


async def test_sockets_are_closed_1012_when_the_layer_loses_redis(private_redis, settings):
    settings.REALTIME_REDIS_CHECK_SECONDS = 0.2
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": private_redis.info["url"]}], "prefix": "loss"},
        }
    }
    user = await database_sync_to_async(make_user)()
    sockets = [await open_socket(user) for _ in range(2)]
    assert await sockets[0].receive_nothing(timeout=0.5)  # healthy: stays open
    private_redis.stop()
    for ws in sockets:
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 1012}
        await ws.disconnect()


async def test_sockets_are_closed_1012_when_the_subscriber_connection_is_made_again(
    private_redis, settings
):
    """Redis kills the subscriber (its output buffer, a reset, a proxy's timeout) while an
    event is published: redis-py reconnects and subscribes again without a word, the server
    is the same (the watchdog sees nothing), and the event is gone. The sockets close so that
    their clients resume."""
    import redis.asyncio as aioredis

    settings.REALTIME_REDIS_CHECK_SECONDS = 0.2
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [{"address": private_redis.info["url"]}], "prefix": "kill"},
        }
    }
    user = await database_sync_to_async(make_user)()
    ws = await open_socket(user)
    assert await ws.receive_nothing(timeout=0.5)
    client = aioredis.Redis.from_url(private_redis.info["url"])
    try:
        async with client.pipeline(transaction=True) as pipe:
            pipe.client_kill_filter(_type="pubsub")
            pipe.publish("kill__group__realtime.fanout", b"lost")
            killed, receivers = await pipe.execute()
        assert killed >= 1 and receivers == 0  # the push reached nobody
        assert await ws.receive_output(timeout=5) == {"type": "websocket.close", "code": 1012}
    finally:
        await client.aclose()
        await ws.disconnect()
