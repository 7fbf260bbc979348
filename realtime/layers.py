"""Sending many channel-layer messages at once.

channels-redis's pub/sub layer publishes one message per Redis round trip, each under its
shard's lock, so a fan-out to 500 users waits for 500 round trips in a row. Here the
messages for one shard go out in one pipeline (one round trip), named and serialised exactly
as the layer's own ``group_send`` does. This leans on that layer's internals (channels-redis
4.3, pinned in the lock files); any other layer, or a layer without those internals, gets the
messages one ``group_send`` at a time.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any


async def group_send_many(layer: Any, messages: list[tuple[str, dict[str, Any]]]) -> None:
    batches = _pubsub_batches(layer, messages) if len(messages) > 1 else None
    if batches is None:
        for group, message in messages:
            await layer.group_send(group, message)
        return
    for shard, items in batches.items():
        async with shard._lock:
            shard._ensure_redis()
            pipe = shard._redis.pipeline(transaction=False)
            for channel, data in items:
                pipe.publish(channel, data)
            await pipe.execute()


def _pubsub_batches(
    layer: Any, messages: list[tuple[str, dict[str, Any]]]
) -> dict[Any, list[tuple[str, bytes]]] | None:
    try:
        inner = layer._get_layer()
        batches: dict[Any, list[tuple[str, bytes]]] = defaultdict(list)
        for group, message in messages:
            channel = inner._get_group_channel_name(group)
            batches[inner._get_shard(channel)].append((channel, layer.serialize(message)))
        for shard in batches:
            shard._lock, shard._ensure_redis  # noqa: B018 (the internals used above exist)
    except AttributeError:
        return None
    return batches
