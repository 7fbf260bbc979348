"""Imported by the server that ``bench/gateway.py`` starts (on its ``PYTHONPATH``), to tell the
server's pauses from the code the benchmark measures. Each part runs only if its variable is
set to a file:

- ``BENCH_GC_LOG``: each garbage collection of 10 ms or more, as
  ``<generation> <ms> <wall time it ended>`` (a full collection stops the whole event loop);
- ``BENCH_STALL_LOG``: each time a probe thread woke 30 ms or more late, as
  ``<wall time> late <ms> ms`` (the interpreter was held by something else meanwhile);
- ``BENCH_GC_CENSUS``: on ``SIGUSR2``, the 80 commonest types among the tracked objects (what a
  full collection would scan), e.g. ``kill -USR2 <server pid>`` while the sockets are held."""

import gc
import os
import time

_LOG = os.environ.get("BENCH_GC_LOG", "")

if _LOG:
    _started = [0.0]

    def _timed(phase: str, info: dict) -> None:
        if phase == "start":
            _started[0] = time.perf_counter()
            return
        ms = (time.perf_counter() - _started[0]) * 1000
        if ms >= 10:
            with open(_LOG, "a") as log:
                log.write(f"{info['generation']} {ms:.1f} {time.time():.3f}\n")

    gc.callbacks.append(_timed)

_CENSUS = os.environ.get("BENCH_GC_CENSUS", "")

if _CENSUS:
    import signal
    from collections import Counter

    def _census(signum, frame) -> None:
        objs = gc.get_objects()
        kinds = Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in objs)
        with open(_CENSUS, "a") as out:
            out.write(
                f"# {time.time():.0f} tracked={len(objs)} frozen={gc.get_freeze_count()} "
                f"counts={gc.get_count()}\n"
            )
            for name, n in kinds.most_common(80):
                out.write(f"{n:8d} {name}\n")
        del objs

    signal.signal(signal.SIGUSR2, _census)

_STALLS = os.environ.get("BENCH_STALL_LOG", "")

if _STALLS:
    import threading

    def _watch() -> None:
        """A thread that wakes every 5 ms: when it wakes late, the interpreter (the GIL) was
        held by something else for that long: a collection, a long call that never yields."""
        while True:
            before = time.perf_counter()
            time.sleep(0.005)
            late = (time.perf_counter() - before - 0.005) * 1000
            if late >= 30:
                with open(_STALLS, "a") as out:
                    out.write(f"{time.time():.3f} late {late:.1f} ms\n")

    threading.Thread(target=_watch, name="stall-probe", daemon=True).start()
