"""core/collector.py: each round collects what is new and freezes the survivors; a frozen
cycle that turns into garbage waits for the reclaim, which comes when the frozen set grows."""

import gc
import importlib
import sys
import threading
import weakref

import pytest

from core.collector import Collector


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
    assert kept.me is kept


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


def test_the_server_starts_the_rounds_when_configured(settings):
    import telemed.asgi

    settings.GC_FREEZE_SECONDS = 3600.0  # the first round is an hour away: nothing else runs
    importlib.reload(telemed.asgi)
    assert any(t.name == "gc-freezer" and t.daemon for t in threading.enumerate())
