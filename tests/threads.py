"""Run one piece of work in several threads at once, for race tests on real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def run_together(threads: int, work: Callable[[int], Any]) -> tuple[list[Any], list[BaseException]]:
    """Start ``work(n)`` for n in ``range(threads)`` behind one barrier; answer what they
    returned and what they raised (each thread closes its own database connection)."""
    barrier = threading.Barrier(threads)
    results: list[Any] = []
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            results.append(work(n))
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    started = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in started:
        t.start()
    for t in started:
        t.join(timeout=120)
    return results, errors
