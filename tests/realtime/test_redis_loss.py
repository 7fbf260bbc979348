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
