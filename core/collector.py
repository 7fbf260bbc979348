"""The server's garbage-collection policy: pauses that follow what is new, not the whole heap.

CPython's cyclic collector stops the whole process while it runs. A full collection scans
every object the process tracks; with 2,000 sockets held that is ~350k objects and ~250 ms
(``bench/RESULTS.md``, real-time gateway), during which no socket is served and no request
answered. Python runs one whenever the objects promoted to the old generation since the last
one reach a quarter of it, whether they are still alive or long freed: under 50 bookings/s that
was every 9-30 s.

What a socket server holds is mostly long-lived (sockets, their users, the loaded code), and
what it allocates mostly dies young. So every ``GC_FREEZE_SECONDS`` a thread of the server:

1. runs a full collection, which finds every cycle of garbage made since the last round and
   costs in proportion to that (the older objects are *frozen*: the collector skips them);
2. freezes what survived (``gc.freeze()``), so that the next rounds skip it too.

Frozen objects freed by their reference count are freed as usual, but a frozen cycle that
becomes garbage (a closed socket's tasks and protocol objects) stays until a **reclaim**: the
round unfreezes everything and collects the whole heap, the pause Python would otherwise take
every few seconds under load. It comes when the heap (the interpreter's allocated blocks, a
count it keeps for free) has grown by half since the last reclaim (or the first round), at
the first round that finds the process quiet (under ``QUIET_LOAD`` of a core over the last
``QUIET_SECONDS``, or since the last round if that was longer ago), so that the pause lands
between bursts of traffic; or at once if the heap has tripled.
(``gc.get_freeze_count()`` is not used: it walks the whole frozen list, ~65 ms with 2,000
sockets, holding the interpreter.)"""

from __future__ import annotations

import collections
import gc
import logging
import sys
import threading
import time

log = logging.getLogger(__name__)


class Collector:
    """One round at a time (``tick``); ``start`` runs the rounds in a daemon thread."""

    QUIET_LOAD = 0.25  # cores the process used on average over the last QUIET_SECONDS
    QUIET_SECONDS = 5.0

    def __init__(self, growth: float = 1.5, limit: float = 3.0) -> None:
        self.growth, self.limit = growth, limit
        self.base = 0  # the heap's size after the last reclaim; the first round sets it
        self.reclaims = 0

    def due(self, heap: int, load: float) -> bool:
        """Whether a round should reclaim, for this heap size and the process's load."""
        if not self.base or heap <= self.growth * self.base:
            return False
        return load < self.QUIET_LOAD or heap > self.limit * self.base

    def tick(self, load: float = 0.0) -> str:
        """One round: ``"reclaim"`` if it collected the whole heap, else ``"round"``.
        ``load``: the cores the process used since the last round (``start`` measures it)."""
        heap = sys.getallocatedblocks()
        if self.due(heap, load):
            started = time.perf_counter()
            gc.unfreeze()
            found = gc.collect()
            gc.freeze()
            self.base = sys.getallocatedblocks()
            self.reclaims += 1
            log.info(
                "gc reclaim: heap %d -> %d blocks, %d garbage objects, %.0f ms",
                heap,
                self.base,
                found,
                (time.perf_counter() - started) * 1000,
            )
            return "reclaim"
        gc.collect()
        gc.freeze()
        self.base = self.base or sys.getallocatedblocks()
        return "round"


class Load:
    """The process's CPU use (cores) over the last ``Collector.QUIET_SECONDS`` at least,
    however short the rounds: one quiet second inside traffic is no time for a whole-heap
    pause. ``update`` takes a (wall, CPU) sample and answers the load up to it."""

    def __init__(self, wall: float, cpu: float) -> None:
        self.samples = collections.deque([(wall, cpu)])

    def update(self, wall: float, cpu: float) -> float:
        while len(self.samples) > 1 and wall - self.samples[1][0] >= Collector.QUIET_SECONDS:
            self.samples.popleft()
        then, cpu_then = self.samples[0]
        self.samples.append((wall, cpu))
        return (cpu - cpu_then) / max(1e-3, wall - then)


_started: list[threading.Thread] = []


def start(every_seconds: float) -> Collector | None:
    """Run a collector's rounds every ``every_seconds`` in a daemon thread (once per process;
    the first call wins). 0 leaves Python's own collector alone, as does an interpreter that
    does not count its blocks (``PYTHONMALLOC=malloc``): there the reclaim could never come."""
    if every_seconds <= 0 or _started:
        return None
    if not sys.getallocatedblocks():
        log.warning("GC_FREEZE_SECONDS ignored: this interpreter does not count its blocks")
        return None
    collector = Collector()

    def run() -> None:
        load = Load(time.monotonic(), time.process_time())
        while True:
            time.sleep(every_seconds)
            current = load.update(time.monotonic(), time.process_time())
            try:
                collector.tick(current)
            except Exception:  # a failed round must not end the rounds
                log.exception("gc round failed")

    thread = threading.Thread(target=run, name="gc-freezer", daemon=True)
    _started.append(thread)
    thread.start()
    return collector
