"""Django's Redis cache, with connection pools and clients shared by the whole process.

Django keeps a cache backend per thread (per request context under ASGI: every request runs
on a thread of its own), and its ``RedisCacheClient`` keeps its connection pools per backend:
under ASGI each request that touched the cache opened a new TCP connection to Redis, and
redis-py's handshake looked up its own version in the installed packages' metadata (directory
listings and file reads): about 1 ms of CPU per request. Here the pools are per process, keyed
by server and options, so connections are reused across requests and threads.

Django's ``RedisCacheClient.get_client`` also builds a new ``redis.Redis`` for every call,
and each one copies redis-py's table of ~170 response callbacks: about 0.15 ms of CPU per
call. A ``redis.Redis`` is safe to share between threads (each command takes a connection
from the pool), so there is one per pool.

The pools' connections carry a circuit breaker (``core/redis_breaker.py``): a Redis that
hangs costs a request one socket timeout, then fails at once for a few seconds.
"""

from __future__ import annotations

import functools
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache, RedisCacheClient

from core.redis_breaker import connection_class_for

logger = logging.getLogger(__name__)

_POOLS: dict[tuple[str, str], Any] = {}
_CLIENTS: dict[int, Any] = {}
_LOCK = threading.Lock()


class _SharedClient(RedisCacheClient):
    def _get_connection_pool(self, write: bool) -> Any:
        index = self._get_connection_pool_index(write)  # type: ignore[attr-defined]  # untyped
        server = self._servers[index]  # type: ignore[attr-defined]
        options = self._pool_options  # type: ignore[attr-defined]
        key = (server, repr(sorted(options.items())))
        pool = _POOLS.get(key)
        if pool is None:
            with _LOCK:
                pool = _POOLS.get(key)
                if pool is None:
                    pool = self._pool_class.from_url(  # type: ignore[attr-defined]
                        server, **{"connection_class": connection_class_for(server), **options}
                    )
                    _POOLS[key] = pool
        return pool

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        pool = self._get_connection_pool(write)
        client = _CLIENTS.get(id(pool))
        if client is None:
            with _LOCK:
                client = _CLIENTS.get(id(pool))
                if client is None:
                    client = self._client(connection_pool=pool)  # type: ignore[attr-defined]
                    _CLIENTS[id(pool)] = client
        return client


class SharedClientRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _SharedClient


def default_redis() -> tuple[Any, Callable[[str], str]] | None:
    """The default cache's own Redis client and its key maker (prefix, version), for the few
    writes the cache API cannot do in one round trip (scripts, pipelines); None when the
    default cache is not Redis (the embedded default), where callers use the cache API."""
    backend = caches["default"]  # ``cache`` is a proxy: isinstance needs the backend
    if not isinstance(backend, RedisCache):
        return None
    return backend._cache.get_client(write=True), backend.make_key


def best_effort(method: Callable[..., Any], *args: Any, what: str = "cache") -> Any:
    """``method(*args)`` for a cache whose answers only save work: when Redis is away the
    caller goes on without it (None), and a write already committed is never turned into an
    error by it."""
    try:
        return method(*args)
    except Exception as exc:
        logger.warning("%s unavailable (%s)", what, type(exc).__name__)
        return None


# --- Leases: a copy read from the database is cached only if no change came meanwhile ---

LEASE_SECONDS = 10  # a read of one row; a lease that outlives it only means no fill


def cache_lease(cache: Any, key: str) -> str | None:
    """Before reading what to cache under ``key`` from the database: a lease on ``key``, or
    None when something is there already (another read's lease, a change's mark) or the
    cache is away. Whoever changes the source deletes or replaces ``key``, which voids it."""
    lease = f"lease:{uuid.uuid4().hex}"
    taken = best_effort(cache.add, key, lease, LEASE_SECONDS, what="cache lease")
    return lease if taken else None


def cache_fill(cache: Any, key: str, lease: str, value: Any, timeout: int) -> None:
    """Put ``value`` (read from the database after ``lease`` was taken) under ``key``, only
    if the lease is still there: a change meanwhile leaves the cache to the next read."""
    best_effort(cache_swap, cache, key, lease, value, timeout, what="cache fill")


def cache_leases(cache: Any, keys: list[str]) -> dict[str, str | None]:
    """:func:`cache_lease` on each of ``keys``: one round trip with Redis."""
    leases = {key: f"lease:{uuid.uuid4().hex}" for key in keys}
    if not isinstance(cache, RedisCache):  # the embedded default (one process)
        return {key: cache_lease(cache, key) for key in keys}
    try:
        client, ser = _client_of(cache)
        pipe = client.pipeline(transaction=False)
        for key, lease in leases.items():
            name = cache.make_and_validate_key(key)
            pipe.set(name, ser.dumps(lease), nx=True, ex=LEASE_SECONDS)
        taken = pipe.execute()
    except Exception as exc:
        logger.warning("cache lease unavailable (%s)", type(exc).__name__)
        return dict.fromkeys(keys)
    return {
        key: lease if ok else None for (key, lease), ok in zip(leases.items(), taken, strict=True)
    }


def cache_fill_many(cache: Any, fills: dict[str, tuple[str, Any]], timeout: int) -> None:
    """:func:`cache_fill` for each ``key: (lease, value)``: one round trip with Redis."""
    if not fills:
        return
    if not isinstance(cache, RedisCache):
        for key, (lease, value) in fills.items():
            cache_fill(cache, key, lease, value, timeout)
        return
    seconds = cache.get_backend_timeout(timeout) or 0
    try:
        client, ser = _client_of(cache)
        script = script_on(client, _SWAP)
        pipe = client.pipeline(transaction=False)
        for key, (lease, value) in fills.items():
            name = cache.make_and_validate_key(key)
            args = [ser.dumps(lease), ser.dumps(value), seconds, 0]
            script(keys=[name], args=args, client=pipe)
        pipe.execute()
    except Exception as exc:
        logger.warning("cache fill unavailable (%s)", type(exc).__name__)


def cache_swap(
    cache: Any, key: str, expected: str, value: Any, timeout: int, *, otherwise_drop: bool = False
) -> bool:
    """``value`` under ``key`` if ``expected`` is there; else, with ``otherwise_drop``, delete
    what is there."""
    if not isinstance(cache, RedisCache):  # the embedded default (one process): not atomic
        current = cache.get(key)
        if current == expected:
            cache.set(key, value, timeout)
            return True
        if otherwise_drop and current is not None:
            cache.delete(key)
        return False
    seconds = cache.get_backend_timeout(timeout)
    if seconds is not None and seconds <= 0:
        return False  # expired already
    script, name, ser = _redis(cache, key, _SWAP)
    args = [ser.dumps(expected), ser.dumps(value), seconds or 0, int(otherwise_drop)]
    return bool(script(keys=[name], args=args))


# KEYS[1]: the key; ARGV: expected, value, seconds (0: no expiry), drop otherwise (1/0).
# Atomic, as a script is.
_SWAP = """
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2])
  else redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) end
  return 1
end
if ARGV[4] == '1' and current then redis.call('DEL', KEYS[1]) end
return 0
"""


def _client_of(cache: Any) -> tuple[Any, Any]:
    """The Redis client behind ``cache``, and the cache's serializer."""
    return cache._cache.get_client(write=True), cache._cache._serializer


def _redis(cache: Any, key: str, source: str) -> tuple[Any, str, Any]:
    """For a script on the Redis behind ``cache``: the script, ``key``'s full name, and the
    cache's serializer (values written by the script are read back by the cache API)."""
    client = cache._cache.get_client(write=True)
    return script_on(client, source), cache.make_and_validate_key(key), cache._cache._serializer


@functools.cache  # one client per pool (SharedClientRedisCache): a few entries in all
def script_on(client: Any, source: str) -> Any:
    """A Lua script on ``client``, registered once: later calls send its hash, not its text
    (redis-py loads it again if Redis lost it)."""
    return client.register_script(source)
