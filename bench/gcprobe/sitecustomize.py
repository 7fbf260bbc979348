"""Imported by the server that ``bench/gateway.py`` starts (on its ``PYTHONPATH``): with
``BENCH_GC_LOG`` set, each garbage collection of 10 ms or more is appended to that file as
``<generation> <ms> <wall time it ended>``. A full collection stops the whole event loop, so
the benchmark can tell its pauses from the code it measures."""

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
