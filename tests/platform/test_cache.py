"""The Redis cache backend shares one client per connection pool."""

import threading

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
