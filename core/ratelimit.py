"""Per-key rate limits in the cache, one round trip per check.

The rate syntax is allauth's (``ACCOUNT_RATE_LIMITS``: ``"30/10s/user,300/5m/user"``), so one
setting style covers logins, codes and our own actions. allauth's limiter keeps each key's
history of hits under a cache lock: four round trips to Redis per check, ~10% of a chat send's
server time under load. Here each rate is a counter per fixed window, and a hit is judged by
the sliding-window estimate ``this window's count + the last window's count x the share of the
last window still inside the sliding one``: no burst of twice the rate across a window's edge,
and one Redis script call (increment, expiry, read of the last window, for every rate) per
check: a redis-py pipeline of the same six commands cost a chat send ~10% of its server CPU,
most of it building the commands in Python."""

from __future__ import annotations

import functools
import math
import time
from typing import Any

from allauth.core.internal.ratelimit import parse_rates
from django.core.cache import cache

from core.cache import default_redis


def consume(action: str, key: Any, rates: str | None, *, now: float | None = None) -> int:
    """Count one hit of ``action`` by ``key`` against ``rates``. Returns 0 if it is allowed,
    else the seconds to wait before the next one would be (what ``Retry-After`` says: a
    retry after that long is allowed, unless other hits came meanwhile). A refused hit counts
    too: a client that keeps trying stays limited."""
    now = time.time() if now is None else now
    windows = []
    for rate in parse_rates(rates):
        duration = max(1, int(rate.duration))
        start = int(now // duration) * duration
        name = f"rl:{action}:{key}:{duration}"
        windows.append((f"{name}:{start}", f"{name}:{start - duration}", rate.amount, duration))
    if not windows:
        return 0
    counts = _hit([(this, last, duration) for this, last, _, duration in windows])
    limits = [
        (amount, duration, this, last)
        for (*_, amount, duration), (this, last) in zip(windows, counts, strict=True)
    ]
    if all(_allowed(now, *limit) for limit in limits):
        return 0
    return max(_wait(now, *limit) for limit in limits)


def _allowed(now: float, amount: int, duration: int, this: int, last: int) -> bool:
    """Whether the sliding-window estimate at ``now`` (``this`` and ``last``: the counts of
    ``now``'s window, this hit included, and of the one before) is within ``amount``."""
    return this + last * (1 - now % duration / duration) <= amount


def _wait(now: float, amount: int, duration: int, this: int, last: int) -> int:
    """Whole seconds from ``now`` to the first moment one more hit would be allowed, with
    no other hit meanwhile. Its estimate only falls as time passes (it is the same on both
    sides of a window's edge), so that moment is found by solving it, window by window:
    ``this + 1 + last x (1 - elapsed)`` in this window, ``1 + this x (1 - elapsed)`` in the
    next (elapsed: the share of the window gone), and 1 after that."""
    start = now // duration * duration
    if this + 1 <= amount:  # in this window, as the last one's share shrinks (or at once)
        share = 1 - (amount - this - 1) / last if last else 0.0
        moment = max(now, start + duration * share)
    elif amount >= 1:  # in the next one, as this one's share shrinks
        moment = start + duration * (2 - (amount - 1) / this)
    else:
        moment = start + 2 * duration
    wait = max(1, math.ceil(moment - now))
    while wait < 2 * duration and not _allowed_after(now, wait, amount, duration, this, last):
        wait += 1  # the rounding of the solution; checked as the retry will be
    return wait


def _allowed_after(now: float, wait: int, amount: int, duration: int, this: int, last: int) -> bool:
    """Whether a hit ``wait`` seconds after ``now``, the next one, would be allowed."""
    later = now + wait
    windows_on = int(later // duration - now // duration)
    counts = {0: (this + 1, last), 1: (1, this)}.get(windows_on, (1, 0))
    return _allowed(later, amount, duration, *counts)


# For each rate i: INCR this window (KEYS[2i-1]), give it its expiry (ARGV[i]) when it is new,
# read the last window (KEYS[2i]); answers this, last, ... Atomic, as a script is.
_HIT = """
local out = {}
for i = 1, #ARGV do
  local this = redis.call('INCR', KEYS[2 * i - 1])
  if this == 1 then redis.call('EXPIRE', KEYS[2 * i - 1], ARGV[i]) end
  out[2 * i - 1] = this
  out[2 * i] = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
end
return out
"""


# INCRBY the counter (KEYS[1]) by ARGV[1] and, when it has no expiry yet (it is new, or was
# left without one), give it ARGV[2] seconds; answers the new count. TTL then EXPIRE, not
# ``EXPIRE ... NX``, which Redis 6 refuses.
_ADD = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) < 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return count
"""


@functools.cache
def _script(client: Any, source: str) -> Any:
    """``source`` registered with this client (EVALSHA, loaded again if Redis lost it)."""
    return client.register_script(source)


def _hit(keys: list[tuple[str, str, int]]) -> list[tuple[int, int]]:
    """Add one to each ``this`` window and read each ``last``: (this, last) per rate."""
    redis = default_redis()
    if redis is not None:
        client, make_key = redis
        names = [make_key(key) for this, last, _ in keys for key in (this, last)]
        answers = _script(client, _HIT)(
            keys=names, args=[2 * duration + 1 for *_, duration in keys]
        )
        return [(int(answers[i]), int(answers[i + 1])) for i in range(0, len(answers), 2)]
    counts = []
    for this, last, duration in keys:  # the embedded default (one process): not atomic
        cache.add(this, 0, timeout=2 * duration + 1)
        counts.append((cache.incr(this), int(cache.get(last) or 0)))
    return counts


def add(name: str, delta: int, *, window: int) -> int:
    """Add ``delta`` (negative: give counts back) to the counter ``name`` in one step, and
    answer its new count: for a limit whose hits may be given back, which :func:`consume`'s
    rates cannot say (``accounts.otp``: a right password takes back its attempt). The
    counter lives ``window`` seconds from its first count, not pushed back by later ones.
    With Redis, one script call: the cache API's ``incr`` reads, then adds, and a counter
    expiring in between came back with no expiry at all, a limit for good."""
    redis = default_redis()
    if redis is None:  # the embedded default (one process)
        cache.add(name, 0, timeout=window)
        return int(cache.incr(name, delta))
    client, make_key = redis
    return int(_script(client, _ADD)(keys=[make_key(name)], args=[delta, window]))


def check(action: str, key: Any, rates: str | None) -> None:
    """:func:`consume`, refusing with 429 ``request.rate_limited`` (and ``Retry-After``)."""
    from core.errors import RateLimited

    wait = consume(action, key, rates)
    if wait:
        raise RateLimited(retry_after=wait)
