"""``Retry-After`` of core/ratelimit.py is the first moment the sliding-window estimate lets a
hit through: a retry right after it is allowed, a second earlier is refused."""

from __future__ import annotations

import uuid

import pytest

from core.ratelimit import consume

EDGE = 1_000_080.0  # a multiple of 60, 10 and 3,600: windows of each start there


def _refused_after(rates: str, hits: list[float]) -> tuple[str, int]:
    """A fresh key given ``hits`` (moments); the wait its last hit was told."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    waits = [consume(name, "u", rates, now=t) for t in hits]
    assert waits[-1] > 0, waits
    return name, waits[-1]


# rates, the moments of the hits: the last one is refused.
CASES = [
    ("10/m/user", [EDGE + 1] * 11),  # eleven at once: the next window still counts them
    ("3/m/user", [EDGE - 1] * 3 + [EDGE + 1]),  # the last window's share must shrink
    ("1/m/user", [EDGE + 5] * 2),  # only the window after the next one allows
    ("2/10s/user,5/m/user", [EDGE + i for i in (0, 1, 2, 3, 4, 5, 6)]),  # the longer rate
    ("5/h/user", [EDGE + 100.5] * 6),  # fractional moments, a long window
]


@pytest.mark.parametrize(("rates", "hits"), CASES)
def test_a_retry_exactly_after_retry_after_is_allowed(rates, hits):
    name, wait = _refused_after(rates, hits)
    assert consume(name, "u", rates, now=hits[-1] + wait) == 0


@pytest.mark.parametrize(("rates", "hits"), CASES)
def test_a_retry_a_second_earlier_is_refused(rates, hits):
    name, wait = _refused_after(rates, hits)
    assert wait > 1
    assert consume(name, "u", rates, now=hits[-1] + wait - 1) > 0


def test_eleven_hits_on_ten_a_minute_wait_past_the_window_edge():
    """The window ends 59 s later, but its eleven hits still weigh 1 + 11 x (1 - x/60) there:
    under ten only from 10.9 s into the next window."""
    name, wait = _refused_after("10/m/user", [EDGE + 1] * 11)
    assert wait == 70
    assert consume(name, "u", "10/m/user", now=EDGE + 60) > 0  # the old answer's moment
