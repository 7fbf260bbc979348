"""Closes this process's sockets when the channel layer's Redis connection is lost.

The pub/sub layer drops whatever is published while its connection is down (redis-py
reconnects and subscribes again, silently), so a socket that stayed open would miss events
without knowing. A task per event loop asks each layer host for its ``run_id`` every
``REALTIME_REDIS_CHECK_SECONDS``: if the host answers with another ``run_id`` (it
restarted), or cannot be reached twice in a row (a busy event loop can make one check slow:
that alone must not close thousands of sockets), every socket of the process is closed with
1012 (service restart) and clients reconnect and ``resume`` from the database. Only for a
Redis channel layer. The sockets are those of :mod:`realtime.fanout`'s registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import Any

from django.conf import settings

from realtime import fanout

_tasks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[None]] = (
    weakref.WeakKeyDictionary()
)


def _layer_addresses() -> list[str]:
    config: dict[str, Any] = settings.CHANNEL_LAYERS.get("default", {})
    if "channels_redis" not in config.get("BACKEND", ""):
        return []
    hosts = config.get("CONFIG", {}).get("hosts", [])
    return [h["address"] if isinstance(h, dict) else str(h) for h in hosts]


def watch() -> None:
    """Start this loop's watch if it is not running (a socket has just joined the registry)."""
    addresses = _layer_addresses()
    if not addresses:
        return
    loop = asyncio.get_running_loop()
    task = _tasks.get(loop)
    if task is None or task.done():
        _tasks[loop] = loop.create_task(_watch(addresses))


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
        while fanout.local_sockets():
            for i, client in enumerate(clients):
                try:
                    run_id = (await client.info("server"))["run_id"]
                except Exception:
                    failures[i] += 1
                    if failures[i] == 2 and known[i] is not None:
                        known[i] = None
                        await fanout.close_all(fanout.CLOSE_SERVICE_RESTART)
                    continue
                failures[i] = 0
                if known[i] is not None and run_id != known[i]:
                    await fanout.close_all(fanout.CLOSE_SERVICE_RESTART)
                known[i] = run_id
            await asyncio.sleep(interval)
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.aclose()
