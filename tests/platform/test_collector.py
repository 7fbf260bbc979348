"""core/collector.py: each round collects what is new and freezes the survivors; a frozen
cycle that turns into garbage waits for the reclaim, which comes when the heap grows (and, under
load, waits for a quiet round)."""

import gc
import importlib
import sys
import threading
import weakref

import pytest

from core.collector import Collector, Load


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector can free it


@pytest.fixture
def clean_gc():
    """Leave the process's frozen set as it found it (whatever a test froze is thawed)."""
    yield
    gc.unfreeze()
    gc.collect()


def test_a_round_collects_new_garbage_and_freezes_what_survives(clean_gc):
    collector = Collector()
    garbage, kept = Node(), Node()
    dead = weakref.ref(garbage)
    del garbage
    frozen_before = gc.get_freeze_count()

    assert collector.tick() == "round"

    assert dead() is None
    assert gc.get_freeze_count() > frozen_before
    # Alive, tracked, and in no generation a collection scans: frozen.
    assert gc.is_tracked(kept) and not any(o is kept for o in gc.get_objects())


def test_a_frozen_cycle_waits_for_the_reclaim_when_the_frozen_set_grows(clean_gc):
    collector = Collector(growth=1.5)
    node = Node()
    dead = weakref.ref(node)
    collector.tick()  # node is alive: frozen
    del node

    assert collector.tick() == "round"
    assert dead() is not None  # frozen garbage: no round scans it

    heap = sys.getallocatedblocks()
    collector.base = heap // 2  # as if the heap had doubled since the first round
    assert collector.tick() == "reclaim"
    assert dead() is None
    assert collector.reclaims == 1
    assert collector.base > heap * 0.9  # the next reclaim waits for the heap to grow again


def test_a_reclaim_waits_for_a_quiet_process_unless_the_heap_has_tripled():
    collector = Collector(growth=1.5, limit=3.0)
    busy, quiet = 0.9, Collector.QUIET_LOAD / 2
    assert not collector.due(1000, quiet)  # no base yet: the first round sets it
    collector.base = 1000
    assert not collector.due(1400, quiet)  # grown by less than half
    assert not collector.due(2000, busy)  # grown, but the process is serving traffic
    assert collector.due(2000, quiet)
    assert collector.due(3100, busy)  # tripled: now, whatever the load


def test_a_busy_round_defers_the_reclaim(clean_gc):
    collector = Collector(growth=1.5)
    node = Node()
    dead = weakref.ref(node)
    collector.tick(load=0.0)
    del node
    collector.base = sys.getallocatedblocks() // 2

    assert collector.tick(load=0.9) == "round"
    assert dead() is not None
    assert collector.tick(load=0.0) == "reclaim"
    assert dead() is None


def test_the_server_starts_the_rounds_when_configured(settings):
    import telemed.asgi

    settings.GC_FREEZE_SECONDS = 3600.0  # the first round is an hour away: nothing else runs
    importlib.reload(telemed.asgi)
    assert any(t.name == "gc-freezer" and t.daemon for t in threading.enumerate())


def test_the_load_is_judged_over_five_seconds_at_least_whatever_the_rounds():
    """Rounds every second: a quiet second after busy ones is not a quiet process."""
    load = Load(0.0, 0.0)
    assert load.update(1.0, 0.9) == pytest.approx(0.9)  # (only one second seen yet)
    for second in range(2, 6):
        load.update(float(second), 0.9 * second)  # busy: 0.9 of a core
    quiet = load.update(6.0, 4.5)  # one idle second
    assert quiet == pytest.approx((4.5 - 0.9) / 5)  # over the last 5 s: busy, no reclaim
    for second in range(7, 12):
        quiet = load.update(float(second), 4.5)
    assert quiet == pytest.approx(0.0)  # five idle seconds: quiet
    collector = Collector()
    collector.base = 100  # the heap has doubled since: a reclaim is due once quiet
    assert collector.due(heap=200, load=quiet) and not collector.due(heap=200, load=0.72)
