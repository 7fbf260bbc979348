"""The Redis cache backend shares one client per connection pool."""

import threading
from typing import Any

from django.core.cache import cache, caches

from core.cache import SharedClientRedisCache


def test_one_client_per_pool_and_the_cache_still_works():
    backend = caches["default"]
    assert isinstance(backend, SharedClientRedisCache)
    first = backend._cache.get_client(write=True)
    assert backend._cache.get_client(write=False) is first
    cache.set("shared-client", {"a": 1}, 30)
    assert cache.get("shared-client") == {"a": 1}
    assert cache.add("shared-counter", 0)
    assert cache.incr("shared-counter") == 1
    errors: list[BaseException] = []

    def work(n: int) -> None:  # the shared client from many threads at once
        try:
            for i in range(50):
                cache.set(f"shared-{n}-{i}", i, 30)
                assert cache.get(f"shared-{n}-{i}") == i
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_backends_of_other_threads_share_the_pool_and_its_connections():
    """Django keeps a backend per thread (a request's, under ASGI): they must not each open
    their own connections to Redis."""

    def client() -> Any:
        backend = caches["default"]
        assert isinstance(backend, SharedClientRedisCache)
        return backend._cache.get_client(write=True)

    cache.set("shared-warm", 1, 30)
    mine = client()
    connections = len(mine.connection_pool._available_connections)
    backend = caches["default"]
    theirs: list[Any] = []

    def work() -> None:
        assert caches["default"] is not backend  # another backend object...
        theirs.append(client())
        cache.get("shared-warm")

    for _ in range(5):  # one after the other: each reuses the idle connection
        t = threading.Thread(target=work)
        t.start()
        t.join()
    assert len(theirs) == 5 and all(c is mine for c in theirs)  # ...with the same client
    assert len(mine.connection_pool._available_connections) == connections


def _leases_and_fills(backend: Any) -> None:
    from core.cache import cache_fill_many, cache_leases

    keys = [f"bulk-lease-{i}" for i in range(3)]
    backend.delete_many(keys)
    backend.set(keys[0], ("cached",), 30)  # something there already: no lease
    leases = cache_leases(backend, keys)
    assert leases[keys[0]] is None and leases[keys[1]] and leases[keys[2]]
    assert cache_leases(backend, keys[1:]) == dict.fromkeys(keys[1:])  # leased: not twice
    backend.delete(keys[2])  # a change meanwhile voids that lease
    cache_fill_many(backend, {key: (str(leases[key]), (key,)) for key in keys[1:]}, 30)
    assert backend.get_many(keys) == {keys[0]: ("cached",), keys[1]: (keys[1],)}


def test_leases_and_fills_in_bulk_on_redis():
    _leases_and_fills(caches["default"])


def test_leases_and_fills_in_bulk_in_process():
    from django.core.cache.backends.locmem import LocMemCache

    _leases_and_fills(LocMemCache("bulk-leases", {}))
