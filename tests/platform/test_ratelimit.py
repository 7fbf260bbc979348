"""core/ratelimit.py: one round trip per check, a sliding-window estimate over fixed windows."""

import uuid

from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache

from core.ratelimit import add, consume


def action() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def test_the_tests_count_in_redis():
    assert isinstance(caches["default"], RedisCache)  # the production path, not the fallback


def test_the_rate_is_allowed_then_the_next_hit_waits_for_the_window():
    name, t = action(), 1_000_040.0  # 20 s into a minute window (1,000,020 = 60 x 16,667)
    assert [consume(name, "u1", "3/m/user", now=t + i) for i in range(3)] == [0, 0, 0]
    wait = consume(name, "u1", "3/m/user", now=t + 3)
    assert wait == 67  # 1 + 4 x (1 - x/60) <= 3 from 30 s into the next window
    assert consume(name, "u2", "3/m/user", now=t + 3) == 0  # each key has its own count


def test_no_burst_across_a_window_edge():
    """Three hits at the end of one window: the start of the next still sees them (a fixed
    window would allow three more at once)."""
    name = action()
    edge = 1_000_080.0  # a multiple of 60: a window starts there
    assert [consume(name, "u", "3/m/user", now=edge - 1) for _ in range(3)] == [0, 0, 0]
    assert consume(name, "u", "3/m/user", now=edge + 1) > 0  # 1 + 3 x 59/60 > 3
    # Half-way through the window after: 1 + 2 (the last window's) x 1/2 = 2: allowed.
    assert consume(name, "u", "3/m/user", now=edge + 90) == 0


def test_every_rate_of_a_list_applies():
    name, t = action(), 2_000_000.0
    rates = "2/10s/user,3/m/user"
    assert [consume(name, "u", rates, now=t + i) for i in (0, 1)] == [0, 0]
    assert consume(name, "u", rates, now=t + 2) > 0  # the 10-second rate
    assert consume(name, "u", rates, now=t + 25) > 0  # the minute's: 4 hits counted
    assert consume(name, "u", None) == 0  # no rate configured: never limited


def test_the_embedded_cache_counts_the_same_way(settings):
    """Without Redis (``make run``'s local-memory cache) the cache API counts instead."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert not isinstance(caches["default"], RedisCache)
    name, t = action(), 1_000_040.0
    assert [consume(name, "u", "2/m/user", now=t + i) for i in range(2)] == [0, 0]
    assert consume(name, "u", "2/m/user", now=t + 2) == 78  # 1 + 3 x (1 - x/60) <= 2: x >= 40
    # 50 s into the next window: 1 + 3 (the last window's, the refused hit too) x 10/60 = 1.5.
    assert consume(name, "u", "2/m/user", now=t + 90) == 0


def test_each_window_expires_after_the_next_one():
    """A window's counter lives two windows and a second (the next window reads it), set once
    when it is created, not pushed back by later hits."""
    from core.cache import default_redis

    redis = default_redis()
    assert redis is not None
    client, make_key = redis
    name, t = action(), 1_000_020.0  # the start of a minute window
    consume(name, "u1", "5/m/user,100/h/user", now=t)
    minute = make_key(f"rl:{name}:u1:60:{int(t)}")
    hour = make_key(f"rl:{name}:u1:3600:{int(t // 3600) * 3600}")
    assert int(client.get(minute)) == 1 and int(client.get(hour)) == 1
    assert 115 <= client.ttl(minute) <= 121 and 7195 <= client.ttl(hour) <= 7201
    client.expire(minute, 50)
    consume(name, "u1", "5/m/user,100/h/user", now=t + 1)
    assert int(client.get(minute)) == 2 and client.ttl(minute) <= 50


def test_add_counts_in_a_window_set_at_its_first_count():
    """``add`` (a limit whose hits may be given back, ``accounts.otp``): one script call, the
    window set at the first count, not pushed back by later ones; a counter left with no
    expiry gets one (TTL and EXPIRE in the script: Redis 6 has no ``EXPIRE ... NX``)."""
    from core.cache import default_redis

    redis = default_redis()
    assert redis is not None
    client, make_key = redis
    name = f"{action()}:counter"
    assert [add(name, delta, window=60) for delta in (1, 1, -1)] == [1, 2, 1]
    assert 55 <= client.ttl(make_key(name)) <= 60
    client.expire(make_key(name), 10)
    assert add(name, 1, window=60) == 2 and client.ttl(make_key(name)) <= 10
    client.persist(make_key(name))
    assert add(name, 1, window=60) == 3 and 55 <= client.ttl(make_key(name)) <= 60


def test_add_on_the_embedded_cache(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    name = f"{action()}:counter"
    assert [add(name, delta, window=60) for delta in (1, 1, -1)] == [1, 2, 1]
