"""Closes this process's sockets when the channel layer's Redis connection is lost.

The pub/sub layer drops whatever is published while its connection is down (redis-py
reconnects and subscribes again, silently), so a socket that stayed open would miss events
without knowing. A task per event loop asks each layer host for its ``run_id`` every
``REALTIME_REDIS_CHECK_SECONDS``: if the host answers with another ``run_id`` (it
restarted), or cannot be reached twice in a row (a busy event loop can make one check slow:
that alone must not close thousands of sockets), every socket of the process is closed with
1012 (service restart) and clients reconnect and ``resume`` from the database. Only for a
Redis channel layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from typing import Any

from django.conf import settings

logger = logging.getLogger(__name__)
CLOSE_SERVICE_RESTART = 1012

_sockets: weakref.WeakSet[Any] = weakref.WeakSet()
_tasks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
    weakref.WeakKeyDictionary()
)


def _layer_addresses() -> list[str]:
    config: dict[str, Any] = settings.CHANNEL_LAYERS.get("default", {})
    if "channels_redis" not in config.get("BACKEND", ""):
        return []
    hosts = config.get("CONFIG", {}).get("hosts", [])
    return [h["address"] if isinstance(h, dict) else str(h) for h in hosts]


def watch(consumer: Any) -> None:
    """Register an open socket; start this loop's watch if it is not running."""
    addresses = _layer_addresses()
    if not addresses:
        return
    _sockets.add(consumer)
    loop = asyncio.get_running_loop()
    task = _tasks.get(loop)
    if task is None or task.done():
        _tasks[loop] = loop.create_task(_watch(addresses))


async def _close_all() -> None:
    sockets = list(_sockets)
    logger.warning("channel layer lost its Redis connection: closing %d sockets", len(sockets))
    for consumer in sockets:
        _sockets.discard(consumer)
        with contextlib.suppress(Exception):
            await consumer.close(code=CLOSE_SERVICE_RESTART)


async def _watch(addresses: list[str]) -> None:
    import redis.asyncio as aioredis

    interval = float(getattr(settings, "REALTIME_REDIS_CHECK_SECONDS", 1.0))
    timeout = max(2.0, 3 * interval)
    clients = [
        aioredis.Redis.from_url(a, socket_connect_timeout=timeout, socket_timeout=timeout)
        for a in addresses
    ]
    known: list[str | None] = [None] * len(clients)
    failures = [0] * len(clients)
    try:
        while _sockets:
            for i, client in enumerate(clients):
                try:
                    run_id = (await client.info("server"))["run_id"]
                except Exception:
                    failures[i] += 1
                    if failures[i] == 2 and known[i] is not None:
                        known[i] = None
                        await _close_all()
                    continue
                failures[i] = 0
                if known[i] is not None and run_id != known[i]:
                    await _close_all()
                known[i] = run_id
            await asyncio.sleep(interval)
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.aclose()


def forget(consumer: Any) -> None:
    _sockets.discard(consumer)
