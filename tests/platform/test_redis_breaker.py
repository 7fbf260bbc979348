"""A Redis that hangs (not down: paused, answering nothing) costs one socket timeout, then
commands fail at once until the breaker lets one through again."""

from __future__ import annotations

import signal
import time

import pytest
from django.core.cache.backends.redis import RedisCache

from core import redis_breaker
from core.cache import SharedClientRedisCache


def _cache(url: str) -> RedisCache:
    return SharedClientRedisCache(
        url,
        {
            "KEY_PREFIX": "breaker-test",
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        },
    )


def _failing_calls(cache: RedisCache, n: int) -> float:
    started = time.monotonic()
    for _ in range(n):
        with pytest.raises(Exception, match="(?i)timeout|not connecting"):
            cache.get("k")
    return time.monotonic() - started


def test_a_hung_redis_costs_one_timeout_then_fails_at_once_until_it_answers_again(
    private_redis, settings
):
    settings.REDIS_BREAKER_SECONDS = 3
    cache = _cache(private_redis.info["url"])
    cache.set("k", "v")
    private_redis.popen.send_signal(signal.SIGSTOP)
    try:
        first = _failing_calls(cache, 1)
        assert first >= 0.9  # the socket timeout: the server was really asked
        with pytest.raises(redis_breaker.BreakerOpen):
            cache.get("k")
        # Without the breaker each of these waits its own second.
        assert _failing_calls(cache, 10) < 2
    finally:
        private_redis.popen.send_signal(signal.SIGCONT)
    time.sleep(3.2)  # the breaker lets a command through again
    assert cache.get("k") == "v"


def test_a_redis_refusing_connections_opens_the_breaker_too(settings, private_redis):
    settings.REDIS_BREAKER_SECONDS = 60
    url = private_redis.info["url"]
    private_redis.stop()
    cache = _cache(url)
    with pytest.raises(Exception) as refused:
        cache.get("k")
    assert not isinstance(refused.value, redis_breaker.BreakerOpen)
    with pytest.raises(redis_breaker.BreakerOpen):
        cache.get("k")


def test_the_breaker_keeps_the_scheme_s_connection_kind():
    from redis.connection import SSLConnection, UnixDomainSocketConnection

    assert issubclass(redis_breaker.connection_class_for("rediss://h:6380/0"), SSLConnection)
    unix = redis_breaker.connection_class_for("unix:///run/redis.sock")
    assert issubclass(unix, UnixDomainSocketConnection)
    assert redis_breaker.connection_class_for("redis://h/0") is redis_breaker.BreakerConnection


@pytest.fixture(autouse=True)
def _breakers_closed():
    redis_breaker._OPEN_UNTIL.clear()
    yield
    redis_breaker._OPEN_UNTIL.clear()
