"""Pushes to sockets: one channel-layer message per batch, handed out by each process.

Every server process (each event loop) keeps a registry of its own sockets by user id and
listens on one channel of its own, in the group ``realtime.fanout``. A publisher sends a
batch (events for users, or users whose sockets must close) as one message to that group;
each process looks up its local sockets and puts each event in their inboxes. So a fan-out
to 500 users is one Redis message per process, not 500, and each event is serialised to JSON
once, by the publisher (a socket sends the text as it is).

Batches are cut at ``CHUNK_BYTES`` (Redis closes a pub/sub subscriber whose output buffer
passes 32 MB, or 8 MB for a minute). The listener starts with the first socket of its loop
and stops with the last. If it fails, the loop's sockets are closed (1012) so that clients
resume; so they are when the layer's subscriber connection comes back after a loss (redis-py
reconnects and subscribes again silently, and what was published meanwhile is gone: a kill
by Redis for its output buffer, a reset, a proxy's idle timeout); the loss of the channel
layer's Redis itself is noticed by :mod:`realtime.watchdog`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger(__name__)

GROUP = "realtime.fanout"
CHUNK_BYTES = 256 * 1024
# Room for a user id and msgpack's framing, per recipient.
_PER_USER_BYTES = 48
# The in-memory layer forgets a group member after a day: the listener joins again meanwhile.
_REJOIN_SECONDS = 600.0
CLOSE_SERVICE_RESTART = 1012


class _Hub:
    """This event loop's sockets, by user id, and the task that hands batches to them."""

    def __init__(self) -> None:
        self.sockets: dict[str, set[Any]] = {}
        self.lock = asyncio.Lock()
        self.listener: asyncio.Task[None] | None = None
        self.layer: Any = None
        self.channel = ""
        self.closing: set[asyncio.Task[None]] = set()

    async def join(self, consumer: Any) -> None:
        async with self.lock:
            if self.listener is None or self.listener.done():
                await self._stop()
                await self._start()
            self.sockets.setdefault(consumer.user_id, set()).add(consumer)

    async def leave(self, consumer: Any) -> None:
        user_id: str = getattr(consumer, "user_id", "")  # none: refused before it joined
        devices = self.sockets.get(user_id)
        if devices is None or consumer not in devices:
            return
        devices.discard(consumer)
        if not devices:
            del self.sockets[user_id]
        if not self.sockets:
            async with self.lock:
                if not self.sockets:  # nobody joined meanwhile
                    await self._stop()

    def all(self) -> list[Any]:
        return [consumer for devices in self.sockets.values() for consumer in devices]

    async def _start(self) -> None:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(GROUP, channel)
        self.layer, self.channel = layer, channel
        for connection in _subscriber_connections(layer):
            connection.register_connect_callback(self._reconnected)  # kept as a weak method
        self.listener = asyncio.get_running_loop().create_task(self._listen(layer, channel))

    def _reconnected(self, connection: Any) -> None:
        """redis-py calls this when a subscriber connection of the layer connects again after
        a loss (it then subscribes again): pushes published in between never came, so this
        loop's sockets are closed (1012) and their clients resume from the database."""
        logger.warning("the channel layer's subscriber connection was lost and made again")
        task = asyncio.get_running_loop().create_task(close_all(CLOSE_SERVICE_RESTART))
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)

    async def _stop(self) -> None:
        """Cancel the listener (the pub/sub layer then unsubscribes its channel) and leave
        the group. Under the lock, so a listener starting next subscribes after this."""
        if self.listener is not None:
            self.listener.cancel()
            await asyncio.wait({self.listener})  # its end, without raising it here
            self.listener = None
        if self.channel:
            with contextlib.suppress(Exception):  # Redis may be gone: nothing to leave then
                await asyncio.wait_for(self.layer.group_discard(GROUP, self.channel), 5)
            self.layer, self.channel = None, ""

    async def _listen(self, layer: Any, channel: str) -> None:
        received: asyncio.Task[Any] | None = None
        try:
            while True:
                if received is None:
                    received = asyncio.ensure_future(layer.receive(channel))
                done, _ = await asyncio.wait({received}, timeout=_REJOIN_SECONDS)
                if not done:
                    await layer.group_add(GROUP, channel)
                    continue
                message, received = received.result(), None
                self.deliver(message)
        except Exception:
            logger.exception("the fan-out listener failed")
            await close_all(CLOSE_SERVICE_RESTART)
        finally:
            if received is not None:
                received.cancel()

    def deliver(self, message: dict[str, Any]) -> None:
        """Put each event of a batch in the inbox of each local socket of its users."""
        if message["type"] == "fanout.close":
            code = int(message["code"])
            for user_id in message["users"]:
                for consumer in self.sockets.get(user_id, ()):
                    consumer.inbox.put_nowait({"type": "session.close", "code": code})
            return
        for user_ids, event_id, text in message["events"]:
            push = {"type": "event.push", "id": event_id, "text": text}
            for user_id in user_ids:
                for consumer in self.sockets.get(user_id, ()):
                    consumer.inbox.put_nowait(push)


def _subscriber_connections(layer: Any) -> list[Any]:
    """The connections on which ``channels_redis``'s pub/sub layer receives in this loop (4.x:
    one ``PubSub`` per shard, connected by its first subscription), or none for another layer.
    Its own ``on_reconnect`` option is stored and never called (4.3), hence this."""
    found = []
    for shard in getattr(layer, "_shards", None) or ():
        connection = getattr(getattr(shard, "_pubsub", None), "connection", None)
        if connection is not None and hasattr(connection, "register_connect_callback"):
            found.append(connection)
    return found


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Hub] = weakref.WeakKeyDictionary()


def _hub() -> _Hub:
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = _Hub()
    return hub


async def join(consumer: Any) -> None:
    """Register an open socket (``consumer.user_id``, ``consumer.inbox``) of this process;
    the listener of this loop is running when this returns."""
    await _hub().join(consumer)


async def leave(consumer: Any) -> None:
    await _hub().leave(consumer)


def local_sockets() -> list[Any]:
    """The open sockets of this event loop."""
    return _hub().all()


async def close_all(code: int) -> None:
    """Close every socket of this event loop (clients reconnect and resume); each leaves the
    registry as its disconnection is handled."""
    sockets = _hub().all()
    logger.warning("closing all %d sockets of this process (%d)", len(sockets), code)
    for consumer in sockets:
        if consumer.closing:
            continue  # closing already (a session's close, a failed access check)
        consumer.closing = True  # what is still queued for it is not sent (``event_push``)
        with contextlib.suppress(Exception):  # a client gone already: its disconnection ends it
            await consumer.close(code=code)


# --- Publishing -------------------------------------------------------------------------


def event_batches(pushes: list[tuple[Any, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The messages that carry ``(user id, event)`` pushes, in order, each event as JSON once
    (consecutive pushes of one event object share it), cut at ``CHUNK_BYTES``."""
    grouped: list[tuple[list[str], Any, str]] = []
    last: dict[str, Any] | None = None
    for user_id, event in pushes:
        if event is not last:
            grouped.append(([], event.get("id"), json.dumps(event)))
            last = event
        grouped[-1][0].append(str(user_id))
    return [
        {"type": "fanout.events", "events": chunk}
        for chunk in _chunks(
            (list(part), event_id, text)
            for user_ids, event_id, text in grouped
            for part in _slices(user_ids, len(text))
        )
    ]


def close_batches(user_ids: Iterable[Any], code: int) -> list[dict[str, Any]]:
    users = [str(u) for u in user_ids]
    return [
        {"type": "fanout.close", "code": code, "users": part} for part in _slices(users, 0) if part
    ]


def _slices(user_ids: list[str], text_bytes: int) -> Iterator[list[str]]:
    """``user_ids`` in runs that fit in a chunk beside a text of ``text_bytes``."""
    step = max(1, (CHUNK_BYTES - text_bytes) // _PER_USER_BYTES)
    for start in range(0, max(1, len(user_ids)), step):
        yield user_ids[start : start + step]


def _chunks(
    entries: Iterable[tuple[list[str], Any, str]],
) -> Iterator[list[tuple[list[str], Any, str]]]:
    chunk: list[tuple[list[str], Any, str]] = []
    size = 0
    for entry in entries:
        cost = len(entry[2]) + _PER_USER_BYTES * len(entry[0])
        if chunk and size + cost > CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += cost
    if chunk:
        yield chunk


async def publish(messages: list[dict[str, Any]]) -> None:
    """Send batches to every server process, in order."""
    layer = get_channel_layer()
    for message in messages:
        await layer.group_send(GROUP, message)


def publish_from_thread(messages: list[dict[str, Any]], layer: Any = None) -> None:
    """:func:`publish` for synchronous code (services, after their commit). With the Redis
    pub/sub layer on one server (production's), each batch is one ``PUBLISH`` from a
    synchronous client, as the layer's ``group_send`` would send it: ``async_to_sync`` would
    instead hand the call to the event loop and wait for it (two thread hand-offs, a task and
    the asyncio client: ~0.3 ms of CPU per publish here, and the loop's time is the sockets').
    Any other layer goes through :func:`publish`."""
    send = _sync_sender(layer or get_channel_layer())
    if send is None:
        async_to_sync(publish)(messages)
        return
    for message in messages:
        send(message)


@functools.cache
def _sync_sender(layer: Any) -> Any:
    """``PUBLISH`` of one message to :data:`GROUP` for ``channels_redis``'s pub/sub layer
    (4.x: the group's Redis channel is ``<prefix>__group__<group>``, the message serialised
    by the layer; ``tests/realtime/test_fanout.py`` checks a real subscriber receives it),
    or None for any other layer, or several Redis servers (sharded) or a Sentinel. One per
    layer (the layer is the cache's key: a process has one)."""
    import inspect

    import redis
    from channels_redis.pubsub import RedisPubSubChannelLayer, RedisPubSubLoopLayer
    from channels_redis.utils import decode_hosts

    from core.redis_breaker import connection_class_for

    if not isinstance(layer, RedisPubSubChannelLayer):
        return None
    config = inspect.signature(RedisPubSubLoopLayer).bind_partial(*layer._args, **layer._kwargs)
    hosts = decode_hosts(config.arguments.get("hosts"))
    if len(hosts) != 1 or "address" not in hosts[0]:
        return None
    address = hosts[0]["address"]
    # The cache's timeouts and circuit breaker (core/redis_breaker.py): a publish runs after
    # its request's commit, on the request's thread, so a Redis that hangs must cost one
    # timeout, not redis-py's default wait on every request that notifies.
    options = {
        "connection_class": connection_class_for(address),
        "socket_connect_timeout": 1,
        "socket_timeout": 2,
        **{k: v for k, v in hosts[0].items() if k != "address"},
    }
    client = redis.Redis.from_url(address, **options)
    channel = f"{config.arguments.get('prefix', 'asgi')}__group__{GROUP}"
    return lambda message: client.publish(channel, layer.serialize(message))
