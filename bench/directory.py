"""Nearby doctor search at scale: the H3 index under open-loop load, against a full scan.

    .venv/bin/python bench/directory.py                 # ~6-10 minutes, seeding included
    .venv/bin/python bench/directory.py --keep          # keep the database for the next run

Needs PostgreSQL and Redis on loopback. What it does, in order, bounded in time and count:

1. Its own database ``telemed_bench_dir`` (created if missing, migrated), seeded with
   ``manage.py seed_demo --doctors 100000`` unless that many generated doctors are there
   already, then ``VACUUM (ANALYZE)`` (what autovacuum does to a live database). Dropped at
   the end unless ``--keep``; nothing else is dropped.
2. In this process (Django set up on that database, nothing else running): for ``--points``
   random points, the nearby ranking through the H3 index (``doctors.selectors``) beside the
   same ranking by FULL SCAN, computing the great-circle distance of every clinic of the
   listed doctors of the specialty, in Python (the selector's own post-filter over every
   clinic: must give exactly the same ranking) and in SQL (haversine in PostgreSQL). Then
   ``EXPLAIN ANALYZE`` of the indexed clinic query for one point.
3. One Uvicorn process, the production server (DEBUG off, PostgreSQL, Redis cache, no
   in-process task worker). Open-loop constant-rate load from an aiohttp client in this
   process: request ``i`` is due at ``t0 + i / rate`` and its latency counts from that due
   time, so a server that falls behind shows as latency (no coordinated omission). It
   reuses the load generator pieces of ``bench/http_baseline.py``.
   - ``GET /api/v1/doctors?lat=..&lng=..&radius_km=10&specialty=<code>`` at ``--rate``
     for ``--duration`` s. Every request is a new point (a random seeded clinic moved up to
     3 km, with one of its doctor's specialties), so the answer cache never hits: the
     script counts the distinct URLs sent and the directory pages the server stored in
     Redis, and checks they match.
   - The maximum sustainable rate of that search and of ``GET /api/v1/info`` on the same
     server: open-loop steps (x1.5, then bisection) until p99 > ``--slo-p99-ms`` or any error.
4. A markdown section on stdout for bench/RESULTS.md; progress goes to stderr. Only this
   run's Redis keys (a random prefix) are deleted at the end.

What-if runs need no code change: PostgreSQL settings for every connection (the server's
included) travel in the URL, e.g. ``--database-url 'postgres://postgres@127.0.0.1:5432/
telemed_bench_dir?options=-c%20max_parallel_workers_per_gather%3D0' --keep``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime
import importlib.metadata
import io
import itertools
import math
import os
import platform
import pstats
import random
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import http_baseline as hb  # bench/http_baseline.py: the open-loop load generator's pieces

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/telemed_bench_dir"
PREFIX = f"telemed-bench-dir-{uuid.uuid4().hex[:8]}"
SEARCH = "/api/v1/doctors"
INFO = "/api/v1/info"
MOVE_KM = 3.0  # a search point is a seeded clinic moved up to this far


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(1, min(len(ordered), math.ceil(q / 100 * len(ordered)))) - 1]


# --- Search points ---------------------------------------------------------------------


class Points:
    """Random search points near seeded clinics, never the same twice (so never a cache hit)."""

    def __init__(self, anchors: list[tuple[float, float, tuple[str, ...]]], seed: int) -> None:
        self.anchors = anchors
        self.rng = random.Random(seed)  # noqa: S311 - load generation, not secrets
        self.seen: set[tuple[float, float, str]] = set()

    def next(self) -> tuple[float, float, str]:
        for _ in range(100):  # bounded; a repeat of a 6-decimal point is already rare
            lat, lng, codes = self.rng.choice(self.anchors)
            distance = MOVE_KM * math.sqrt(self.rng.random())
            bearing = self.rng.random() * 2 * math.pi
            lat = round(max(-89.9, min(89.9, lat + distance * math.cos(bearing) / 111.32)), 6)
            cos_lat = max(0.01, math.cos(math.radians(lat)))
            lng = lng + distance * math.sin(bearing) / (111.32 * cos_lat)
            point = (lat, round((lng + 180) % 360 - 180, 6), self.rng.choice(codes))
            if point not in self.seen:
                self.seen.add(point)
                return point
        raise RuntimeError("could not draw a new point")

    def url(self, base: str, radius_km: float) -> str:
        lat, lng, code = self.next()
        query = urllib.parse.urlencode(
            {"lat": lat, "lng": lng, "radius_km": f"{radius_km:g}", "specialty": code}
        )
        return f"{base}{SEARCH}?{query}"


def load_anchors(limit: int) -> list[tuple[float, float, tuple[str, ...]]]:
    """Up to ``limit`` random clinics of listed doctors, with their doctors' specialties."""
    from doctors.models import Clinic, DoctorProfile, Verification

    rows = list(
        Clinic.objects.filter(doctor__verification=Verification.VERIFIED)
        .order_by("?")
        .values_list("latitude", "longitude", "doctor_id")[:limit]
    )
    codes: dict[Any, list[str]] = {}
    through = DoctorProfile.specialties.through
    for doctor_id, code in through.objects.filter(
        doctorprofile_id__in={r[2] for r in rows}
    ).values_list("doctorprofile_id", "specialty__code"):
        codes.setdefault(doctor_id, []).append(code)
    return [(lat, lng, tuple(codes[d])) for lat, lng, d in rows if codes.get(d)]


# --- In-process: index against full scan -----------------------------------------------


@dataclass
class InProcess:
    points: int = 0
    index_rank: list[float] = field(default_factory=list)  # ms: covering + SQL + post-filter
    index_search: list[float] = field(default_factory=list)  # ms: the whole selector
    covering: list[float] = field(default_factory=list)
    clinic_sql: list[float] = field(default_factory=list)
    page_load: list[float] = field(default_factory=list)
    scan_python: list[float] = field(default_factory=list)
    scan_sql: list[float] = field(default_factory=list)
    cells: list[int] = field(default_factory=list)
    candidates: list[int] = field(default_factory=list)
    found: list[int] = field(default_factory=list)
    page: list[int] = field(default_factory=list)
    same_python: int = 0
    same_sql_page: int = 0
    plans: Counter[str] = field(default_factory=Counter)  # how PostgreSQL ran the clinic query
    explain: str = ""
    explained_point: tuple[float, float, str] = (0.0, 0.0, "")
    busy_cores: float = 0.0


_HAVERSINE_SQL = """
SELECT c.doctor_id, MIN(2 * %(r)s * ASIN(SQRT(
         POWER(SIN(RADIANS(c.latitude - %(lat)s) / 2), 2)
         + COS(RADIANS(%(lat)s)) * COS(RADIANS(c.latitude))
           * POWER(SIN(RADIANS(c.longitude - %(lng)s) / 2), 2)))) AS km
FROM doctors_clinic c
JOIN doctors_doctorprofile p ON p.id = c.doctor_id
JOIN accounts_user u ON u.id = p.user_id
JOIN doctors_doctorprofile_specialties s ON s.doctorprofile_id = p.id AND s.specialty_id = %(spec)s
WHERE p.verification = 'verified' AND u.is_active
GROUP BY c.doctor_id
HAVING MIN(2 * %(r)s * ASIN(SQRT(
         POWER(SIN(RADIANS(c.latitude - %(lat)s) / 2), 2)
         + COS(RADIANS(%(lat)s)) * COS(RADIANS(c.latitude))
           * POWER(SIN(RADIANS(c.longitude - %(lng)s) / 2), 2)))) <= %(radius)s
ORDER BY km, c.doctor_id::text
LIMIT %(limit)s
"""


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _shorten(sql: str) -> str:
    """Long lists of cell ids shown as their count."""
    sql = re.sub(r"\{(\d+,){3,}\d+\}", lambda m: f"{{<{m.group(0).count(',') + 1} cells>}}", sql)
    return re.sub(r"\((\d+, ){3,}\d+\)", lambda m: f"(<{m.group(0).count(',') + 1} cells>)", sql)


def in_process(points: Points, n: int, radius_km: float, budget_s: float) -> InProcess:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from doctors import geo, queries, selectors
    from doctors.models import Clinic, Specialty

    out = InProcess()
    specialty_ids = dict(Specialty.objects.values_list("code", "id"))
    limit = 20
    for _ in range(5):  # warm-up: connection, caches, code paths
        lat, lng, code = points.next()
        selectors.doctor_search(
            filters=selectors.SearchFilters(
                specialty=code, latitude=lat, longitude=lng, radius_km=radius_km
            ),
            cursor=None,
            limit=limit,
        )
    busy0, wall0 = hb._busy_seconds(), time.perf_counter()
    deadline = time.monotonic() + budget_s
    for i in range(n):  # bounded by n and by the time budget
        if time.monotonic() > deadline:
            log(f"  in-process budget of {budget_s:.0f} s spent after {i} points")
            break
        lat, lng, code = points.next()
        f = selectors.SearchFilters(
            specialty=code, latitude=lat, longitude=lng, radius_km=radius_km
        )

        t = time.perf_counter()
        resolution, cells = geo.covering(lat, lng, radius_km)
        out.covering.append(_ms(t))
        out.cells.append(len(cells))
        t = time.perf_counter()
        rows = queries.entries(  # the selector's candidate query (a specialty is given)
            specialty=code, resolution=resolution, cells=list(cells)
        )
        out.clinic_sql.append(_ms(t))
        out.candidates.append(len(rows))

        t = time.perf_counter()
        ranked = selectors._nearby(f)
        out.index_rank.append(_ms(t))
        out.found.append(len(ranked))

        t = time.perf_counter()
        selectors.cards([d for d, _ in ranked[:limit]])
        out.page_load.append(_ms(t))

        t = time.perf_counter()
        with CaptureQueriesContext(connection) as captured:
            page, _ = selectors.doctor_search(filters=f, cursor=None, limit=limit)
        out.index_search.append(_ms(t))
        out.page.append(len(page))

        # Full scan in Python: the selector's exact post-filter over every clinic of the
        # listed doctors of the specialty (no spatial filter in SQL).
        t = time.perf_counter()
        every = Clinic.objects.filter(doctor__in=selectors._filtered(f).values("id")).values_list(
            "doctor_id", "latitude", "longitude"
        )
        nearest: dict[Any, float] = {}
        for doctor_id, distance in geo.nearest_first((lat, lng), every, radius_km):
            nearest.setdefault(str(doctor_id), distance)
        scanned = sorted(nearest.items(), key=lambda item: (item[1], str(item[0])))
        out.scan_python.append(_ms(t))
        out.same_python += scanned == ranked

        # Full scan in SQL: haversine over the same clinics in PostgreSQL, first page only.
        t = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                _HAVERSINE_SQL,
                {
                    "r": geo.EARTH_RADIUS_KM,
                    "lat": lat,
                    "lng": lng,
                    "spec": specialty_ids[code],
                    "radius": radius_km,
                    "limit": limit,
                },
            )
            sql_page = [str(row[0]) for row in cursor.fetchall()]
        out.scan_sql.append(_ms(t))
        out.same_sql_page += sql_page == [d for d, _ in ranked[:limit]]
        out.points += 1

        clinic_query = next(q["sql"] for q in captured.captured_queries if "h3_r" in q["sql"])
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + clinic_query)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        seq = "Seq Scan on doctors_clinic" in plan or "Seq Scan on doctors_directoryentry" in plan
        out.plans["a sequential scan" if seq else "H3 index"] += 1
        out.plans["parallel workers" if "Gather" in plan else "no parallel worker"] += 1
        if i == 0:
            with connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + clinic_query)
                plan = "\n".join(row[0] for row in cursor.fetchall())
            out.explain = _shorten(clinic_query) + "\n\n" + _shorten(plan)
            out.explained_point = (lat, lng, code)
    out.busy_cores = (hb._busy_seconds() - busy0) / (time.perf_counter() - wall0)
    return out


def profile_requests(points: Points, n: int, radius_km: float) -> str:
    """cProfile of ``n`` whole search requests in this process (Django test client: the same
    view, middleware and serialisation as the server, cache misses every time)."""
    from django.test import Client

    client = Client()
    for _ in range(5):
        client.get(points.url("", radius_km))
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for _ in range(n):  # bounded by n
        response = client.get(points.url("", radius_km))
        assert response.status_code == 200, response.content[:300]
    profiler.disable()
    took = time.perf_counter() - started
    text = io.StringIO()
    text.write(f"{n} requests, {took / n * 1000:.1f} ms each under the profiler\n")
    stats = pstats.Stats(profiler, stream=text).strip_dirs()
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(25)
    return text.getvalue()


# --- Load ------------------------------------------------------------------------------


@dataclass
class Load:
    search: bool
    sent: list[str] = field(default_factory=list)
    empty: int = 0
    stored: int = 0  # directory pages the server stored in Redis (cache misses)


async def _fetch(session: aiohttp.ClientSession, url: str, load: Load) -> str | None:
    try:
        async with session.get(url) as response:
            body = await response.read()
            if response.status != 200:
                return f"http_{response.status}"
            if body.startswith(b'{"items": []'):
                load.empty += 1
            return None
    except TimeoutError:
        return "timeout"
    except aiohttp.ClientError as exc:
        return type(exc).__name__


async def open_loop(
    session: aiohttp.ClientSession,
    next_url: Callable[[], str],
    load: Load,
    connections: int,
    rate: float,
    duration: float,
    drain: float,
    kind: str,
) -> hb.Run:
    """``http_baseline.open_loop`` with a new URL for every request (drawn before the clock
    starts): request ``i`` is due at ``t0 + i / rate`` and its latency counts from then."""
    total = max(1, round(rate * duration))
    urls = [next_url() for _ in range(total)]
    load.sent.extend(urls)
    run = hb.Run(kind=kind, rate=rate, duration=duration, scheduled=total)
    t0 = hb.clock() + 0.05
    give_up = t0 + duration + drain
    indices = itertools.count()
    last_done = t0

    async def worker() -> None:
        nonlocal last_done
        for i in indices:  # bounded: stops at ``total``
            if i >= total:
                return
            due = t0 + i / rate
            now = hb.clock()
            if now > give_up:
                run.unsent += 1
                continue
            if due > now:
                await asyncio.sleep(due - now)
            error = await _fetch(session, urls[i], load)
            done = hb.clock()
            hb._record(run, error, done - due)
            last_done = max(last_done, done)

    await asyncio.gather(*(worker() for _ in range(connections)))
    run.elapsed = max(duration, last_done - t0)
    return run


def errors(run: hb.Run) -> str:
    detail = dict(run.errors)
    if run.unsent:
        detail["unsent"] = run.unsent
    return f"{run.error_count} {detail}" if run.error_count else "0"


def line(run: hb.Run) -> str:
    return (
        f"rate {run.rate or 0:6.0f}/s achieved {run.achieved:6.1f}/s p50 {run.percentile(50):6.1f} "
        f"p95 {run.percentile(95):6.1f} p99 {run.percentile(99):6.1f} ms errors {errors(run)} "
        f"cpu server {run.server_cpu:.0%} db+redis {run.deps_cpu:.0%} client "
        f"{run.client_cpu:.0%} other {run.other_cpu:.0%}"
    )


def sustainable(run: hb.Run, slo_p99_ms: float) -> bool:
    assert run.rate is not None
    return (
        run.error_count == 0
        and run.achieved >= 0.95 * run.rate
        and run.percentile(99) <= slo_p99_ms
    )


async def measure(
    server: hb.Server,
    args: argparse.Namespace,
    session: aiohttp.ClientSession,
    next_url: Callable[[], str],
    load: Load,
    rate: float,
    duration: float,
    kind: str,
) -> hb.Run:
    """One open-loop run, after waiting (up to ``--quiet-wait`` s) for a quiet machine, with
    the CPU used meanwhile by the server, this client, PostgreSQL + Redis and everything else
    (http_baseline's accounting). A run that other work disturbed (> ``--quiet-cores``) is
    repeated at most ``--retries`` times; a repetition draws new URLs, so it cannot hit the
    cache either. Counts the directory pages the server stored meanwhile (``load.stored``)."""
    started = time.monotonic()
    pid = server.popen.pid
    budget = duration + args.drain + args.timeout + 10
    for attempt in range(1, args.retries + 2):  # bounded by --retries
        await hb.wait_until_quiet(args.quiet_wait, args.quiet_cores)
        server0, client0 = hb._cpu_seconds(pid), time.process_time()
        deps0, busy0, wall0 = hb._dependency_seconds(), hb._busy_seconds(), hb.clock()
        run = await asyncio.wait_for(
            open_loop(session, next_url, load, args.connections, rate, duration, args.drain, kind),
            timeout=budget,
        )
        wall = hb.clock() - wall0
        run.server_cpu = (hb._cpu_seconds(pid) - server0) / wall
        run.client_cpu = (time.process_time() - client0) / wall
        run.deps_cpu = (hb._dependency_seconds() - deps0) / wall
        busy = (hb._busy_seconds() - busy0) / wall
        run.other_cpu = max(0.0, busy - run.server_cpu - run.client_cpu - run.deps_cpu)
        run.attempts = attempt
        if run.other_cpu <= args.quiet_cores:
            break
        log(f"  (other work used {run.other_cpu:.2f} cores during the run: repeating it)")
    if load.search:
        load.stored += pages_stored_since(args.redis_url, time.monotonic() - started)
    return run


async def max_rate(
    server: hb.Server,
    args: argparse.Namespace,
    session: aiohttp.ClientSession,
    next_url: Callable[[], str],
    load: Load,
    start: float,
    name: str,
) -> tuple[float | None, list[hb.Run]]:
    """Step up x1.5 from ``start`` until a step fails, then bisect (to within 8%)."""
    best: float | None = None
    failed: float | None = None
    rate = start
    steps: list[hb.Run] = []
    deadline = time.monotonic() + args.step_budget
    for _ in range(args.max_steps):  # bounded by --max-steps and --step-budget
        if time.monotonic() > deadline:
            log(f"  {name}: step-up budget spent")
            break
        run = await measure(server, args, session, next_url, load, rate, args.step_duration, "step")
        steps.append(run)
        ok = sustainable(run, args.slo_p99_ms)
        log(f"  {name:6} step {line(run)} -> {'ok' if ok else 'NOT sustainable'}")
        if ok:
            best = rate
        else:
            failed = rate
        if failed is None:
            rate = round(rate * 1.5)
        elif best is None:
            rate = round(rate / 2)
            if rate < 2:
                break
        else:
            rate = round((best + failed) / 2)
            if failed / best <= 1.08 or rate in (best, failed):
                break
    return best, steps


def pages_stored_since(redis_url: str, seconds_ago: float) -> int:
    """Directory answers the server stored under this run's prefix during the last
    ``seconds_ago`` seconds: one per cache miss (a hit stores nothing). Told apart from older
    ones by their remaining time to live (they are stored for ``CACHE_SECONDS``)."""
    import redis

    from doctors.api import CACHE_SECONDS

    client = redis.Redis.from_url(redis_url)
    try:
        keys = [
            key
            for key in client.scan_iter(match=f"{PREFIX}:*directory:*", count=1000)
            if not key.endswith(b":version")
        ]
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.pttl(key)
        oldest_ms = (CACHE_SECONDS - seconds_ago - 1.0) * 1000
        return sum(1 for ttl in pipe.execute() if ttl >= oldest_ms)
    finally:
        client.close()


def delete_redis_keys(redis_url: str) -> int:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{PREFIX}:*", count=1000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
        return len(keys)
    finally:
        client.close()


@dataclass
class Served:
    fixed: hb.Run | None = None
    fixed_empty: int = 0
    fixed_sent: int = 0
    fixed_distinct: int = 0
    fixed_pages_cached: int = 0
    search_max: float | None = None
    search_steps: list[hb.Run] = field(default_factory=list)
    info_max: float | None = None
    info_steps: list[hb.Run] = field(default_factory=list)
    search_sent: int = 0
    search_distinct: int = 0
    pages_cached: int = 0


async def serve_and_load(server: hb.Server, args: argparse.Namespace, points: Points) -> Served:
    out = Served()
    base = server.base
    search_load, info_load = Load(search=True), Load(search=False)

    def next_search() -> str:
        return points.url(base, args.radius_km)

    def next_info() -> str:
        return base + INFO

    async with hb._session(args.connections, args.timeout) as session:
        warm = Load(search=False)
        await open_loop(session, next_search, warm, args.connections, 50, 3, args.drain, "warmup")
        await open_loop(session, next_info, warm, args.connections, 200, 2, args.drain, "warmup")

        run = await measure(
            server, args, session, next_search, search_load, args.rate, args.duration, "fixed"
        )
        out.fixed = run
        out.fixed_empty = search_load.empty
        out.fixed_sent = len(search_load.sent)
        out.fixed_distinct = len(set(search_load.sent))
        out.fixed_pages_cached = search_load.stored
        log(f"  search fixed {line(run)}")

        out.search_max, out.search_steps = await max_rate(
            server, args, session, next_search, search_load, args.rate, "search"
        )
        out.info_max, out.info_steps = await max_rate(
            server, args, session, next_info, info_load, args.info_start, "info"
        )
    out.search_sent = len(search_load.sent)
    out.search_distinct = len(set(search_load.sent))
    out.pages_cached = search_load.stored
    return out


# --- Setup -----------------------------------------------------------------------------


def generated_doctors(database_url: str) -> int:
    import psycopg

    from doctors.demo import DOMAIN

    with psycopg.connect(database_url, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT count(*) FROM doctors_doctorprofile p JOIN accounts_user u ON u.id = p.user_id "
            "WHERE p.verification = 'verified' AND u.email LIKE %s",
            [f"%@{DOMAIN}"],
        ).fetchone()
    return int(row[0]) if row else 0


def seed(env: dict[str, str], doctors: int, seed_value: int) -> tuple[float, str]:
    """Run seed_demo; its output goes to stderr as it comes. Returns (seconds, last lines)."""
    command = [
        sys.executable,
        "manage.py",
        "seed_demo",
        "--doctors",
        str(doctors),
        "--seed",
        str(seed_value),
    ]
    started = time.perf_counter()
    lines: list[str] = []
    with subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        deadline = time.monotonic() + 900
        for line in proc.stdout:  # bounded: the process ends, or is killed at the deadline
            lines.append(line.rstrip())
            log("  " + line.rstrip())
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("seed_demo took more than 15 minutes")
        code = proc.wait(60)
    if code != 0:
        raise RuntimeError("seed_demo failed:\n" + "\n".join(lines[-30:]))
    summary = next((x for x in reversed(lines) if x.startswith("Directory:")), "")
    return time.perf_counter() - started, summary


def drop_database(database_url: str) -> None:
    import psycopg

    parts = urllib.parse.urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def directory_size() -> dict[str, Any]:
    from django.db import connection

    from doctors.models import Clinic, DoctorProfile, Verification

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('doctors_clinic'))")
        size = cursor.fetchone()
    return {
        "verified doctors": DoctorProfile.objects.filter(
            verification=Verification.VERIFIED
        ).count(),
        "clinics": Clinic.objects.count(),
        "clinic table + indexes": size[0] if size else "?",
    }


# --- Report ----------------------------------------------------------------------------


def _f(value: float) -> str:
    return "n/a" if value != value else f"{value:.1f}"


def _head() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"


def _rate(value: float | None) -> str:
    return "none" if value is None else f"{value:.0f}"


def _row(name: str, values: Sequence[float]) -> str:
    return (
        f"| {name} | {_f(pct(values, 50))} | {_f(pct(values, 95))} | {_f(pct(values, 99))} "
        f"| {_f(statistics.fmean(values) if values else float('nan'))} |"
    )


def _run_row(name: str, run: hb.Run, ok: bool | None = None) -> str:
    verdict = "" if ok is None else (" | yes" if ok else " | no")
    return (
        f"| {name} | {run.rate:.0f} | {run.achieved:.0f} | {_f(run.percentile(50))} | "
        f"{_f(run.percentile(95))} | {_f(run.percentile(99))} | {_f(run.percentile(100))} | "
        f"{errors(run)} | {run.server_cpu:.0%} | {run.deps_cpu:.0%} | {run.client_cpu:.0%} | "
        f"{run.other_cpu:.0%}{verdict} |"
    )


def report(
    args: argparse.Namespace,
    command: str,
    started: datetime.datetime,
    info: dict[str, str],
    seeding: str,
    size: dict[str, Any],
    local: InProcess,
    served: Served,
    took: float,
) -> str:
    cores = len(os.sched_getaffinity(0))
    fixed = served.fixed
    assert fixed is not None
    ratio = (
        served.search_max / served.info_max
        if served.search_max is not None and served.info_max
        else float("nan")
    )
    scan_ratio = pct(local.scan_python, 50) / pct(local.index_rank, 50)
    sql_ratio = pct(local.scan_sql, 50) / pct(local.index_rank, 50)
    target_p95 = "met" if fixed.percentile(95) <= 25 and not fixed.error_count else "MISSED"
    target_ratio = "met" if ratio >= 0.8 else "MISSED"
    ratio_text = "0% (no search step was sustainable)" if ratio != ratio else f"{ratio:.0%}"
    per_request = 1000 / fixed.achieved if fixed.achieved else float("nan")
    db_ms, server_ms = fixed.deps_cpu * per_request, fixed.server_cpu * per_request
    sql_share = statistics.fmean(local.clinic_sql) / statistics.fmean(local.index_search)
    plans = ", ".join(f"{name} {count}/{local.points}" for name, count in local.plans.items())
    interpretation = [
        "### Interpretation",
        "",
        f"- At the fixed rate the server completed {fixed.achieved:.0f} searches/s; each cost "
        f"~{db_ms:.0f} ms of PostgreSQL (+ Redis) CPU and ~{server_ms:.0f} ms of server CPU "
        "(CPU shares divided by the rate achieved).",
        f"- The candidate query is {sql_share:.0%} of the selector's time (mean). How PostgreSQL "
        f"ran it over the {local.points} points: {plans}.",
        f"- Full scan / index: {scan_ratio:.1f}x (Python) and {sql_ratio:.1f}x (SQL) at p50.",
    ]
    lat, lng, code = local.explained_point
    header = [
        f"## Directory: nearby search with {args.doctors:,} doctors (H3 index)",
        "",
        f"- command: `{command}`",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; measuring took {took:.0f} s",
        f"- machine: {cores} cores (nproc), {platform.machine()}, {platform.system()} "
        f"{platform.release()}; load generator, server, PostgreSQL and Redis share them; "
        f"CPU speed: {hb.cpu_speed()}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        f"- application: the work tree at commit {_head()} (uncommitted edits included)",
        f"- data: {', '.join(f'{k} {v}' for k, v in size.items())}; {seeding}",
        "- server: one Uvicorn process (`uvicorn --no-access-log --lifespan off "
        "telemed.asgi:application`), DEBUG=false, PostgreSQL with the psycopg pool, Redis cache",
        f"- query: `GET {SEARCH}?lat=..&lng=..&radius_km={args.radius_km:g}&specialty=<code>` "
        f"at points drawn near seeded clinics (a random clinic moved up to {MOVE_KM:g} km, one "
        "of its doctor's specialties), every point new: the answer cache never hits",
        "",
        "### Open-loop fixed rate (latency from the intended send time)",
        "",
        "| endpoint | rate (rps) | achieved | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | errors "
        "| server CPU | db+redis CPU | client CPU | other CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
        _run_row("nearby search", fixed),
        "",
        f"- target p95 <= 25 ms: **{target_p95}** (p95 {fixed.percentile(95):.1f} ms)",
        f"- cache bypassed: {served.fixed_sent} requests sent (all attempts), "
        f"{served.fixed_distinct} distinct URLs, "
        f"{served.fixed_pages_cached} new directory pages stored by the server (one per miss); "
        f"{served.fixed_empty} empty pages",
        "",
        f"### Maximum sustainable rate, one server process (open-loop steps of "
        f"{args.step_duration:g} s; sustainable = no error, >= 95% achieved, p99 <= "
        f"{args.slo_p99_ms:g} ms)",
        "",
        "| endpoint | max sustainable (rps) |",
        "|---|---:|",
        f"| nearby search | {_rate(served.search_max)} |",
        f"| GET {INFO} (trivial) | {_rate(served.info_max)} |",
        "",
        f"- search / trivial: **{ratio_text}** (target >= 80%: **{target_ratio}**)",
        f"- over all search steps: {served.search_sent} requests, {served.search_distinct} "
        f"distinct URLs, {served.pages_cached} directory pages stored (cache never hit)",
        "",
        "| step | target (rps) | achieved | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | errors "
        "| server CPU | db+redis CPU | client CPU | other CPU | sustainable |",
        "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|",
        *[
            _run_row("search", r, sustainable(r, args.slo_p99_ms))
            for r in sorted(served.search_steps, key=lambda r: r.rate or 0)
        ],
        *[
            _run_row("info", r, sustainable(r, args.slo_p99_ms))
            for r in sorted(served.info_steps, key=lambda r: r.rate or 0)
        ],
        "",
        f"### Index against full scan, in process ({local.points} random points, "
        f"radius {args.radius_km:g} km, one specialty, first page of 20)",
        "",
        "| ranking of the nearby doctors | p50 (ms) | p95 (ms) | p99 (ms) | mean (ms) |",
        "|---|---:|---:|---:|---:|",
        _row("H3 index: covering + indexed SQL + exact post-filter", local.index_rank),
        _row(
            "full scan, Python: every clinic of the specialty's doctors + post-filter",
            local.scan_python,
        ),
        _row(
            "full scan, SQL: haversine over the same clinics in PostgreSQL, LIMIT 20",
            local.scan_sql,
        ),
        "",
        f"- full scan / index at p50: Python **{scan_ratio:.1f}x**, SQL **{sql_ratio:.1f}x**",
        f"- same ranking: Python full scan {local.same_python}/{local.points} identical "
        f"(every id and distance); SQL full scan first page {local.same_sql_page}/{local.points}",
        f"- per point: cells {statistics.median(local.cells):.0f} (median), candidate clinics "
        f"{statistics.median(local.candidates):.0f} (median, max {max(local.candidates)}), "
        f"doctors within the radius {statistics.median(local.found):.0f} (median), "
        f"page size {statistics.median(local.page):.0f} (median, "
        f"{sum(1 for p in local.page if p == 0)} empty)",
        f"- machine busy {local.busy_cores:.2f} cores during these measurements",
        "",
        "| where the indexed search spends its time | p50 (ms) | p95 (ms) | p99 (ms) | mean (ms) |",
        "|---|---:|---:|---:|---:|",
        _row("`geo.covering` (cells of the disk)", local.covering),
        _row(
            "candidate query (`queries.entries`: listed, specialty + H3 `= ANY`, no join)",
            local.clinic_sql,
        ),
        _row(
            "page load (`selectors.cards`: profiles, users, specialties, clinics, one statement)",
            local.page_load,
        ),
        _row("whole `selectors.doctor_search`", local.index_search),
        "",
        f"### EXPLAIN ANALYZE of the indexed clinic query ({lat:.5f}, {lng:.5f}, {code})",
        "",
        "```text",
        local.explain,
        "```",
        "",
        *interpretation,
    ]
    return "\n".join(header)


# --- Main ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Nearby doctor search at scale: H3 index under open-loop load, and full scan.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--database-url", default=DEFAULT_DB)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--doctors", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2026, help="seed_demo --seed")
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument("--rate", type=float, default=100.0, help="fixed open-loop rate (rps)")
    parser.add_argument("--duration", type=float, default=20.0, help="fixed-rate run, seconds")
    parser.add_argument("--radius-km", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--step-duration", type=float, default=6.0)
    parser.add_argument("--max-steps", type=int, default=12, help="per endpoint")
    parser.add_argument("--step-budget", type=float, default=240.0, help="seconds per endpoint")
    parser.add_argument("--info-start", type=float, default=200.0, help="first /info step (rps)")
    parser.add_argument("--slo-p99-ms", type=float, default=100.0)
    parser.add_argument("--points", type=int, default=50, help="in-process comparison points")
    parser.add_argument("--profile", type=int, default=0, help="cProfile N requests (stderr)")
    parser.add_argument("--timeout", type=float, default=5.0, help="per request, seconds")
    parser.add_argument("--drain", type=float, default=5.0)
    parser.add_argument("--quiet-wait", type=float, default=20.0)
    parser.add_argument("--quiet-cores", type=float, default=0.3)
    parser.add_argument("--retries", type=int, default=1)
    args = parser.parse_args(argv)
    if not (0 < args.rate <= 5000 and 0 < args.duration <= 120 and 0 < args.step_duration <= 60):
        parser.error("rate 0-5000, duration 0-120 s, step duration 0-60 s")
    if not (1 <= args.points <= 1000 and 0 <= args.profile <= 5000 and 1 <= args.max_steps <= 30):
        parser.error("points 1-1000, profile 0-5000, max steps 1-30")
    if not 1 <= args.connections <= 512 or args.doctors < 1:
        parser.error("connections 1-512, doctors >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([".venv/bin/python", "bench/directory.py", *sys.argv[1:]])
    started = datetime.datetime.now(datetime.UTC)
    t_start = time.monotonic()
    sys.path.insert(0, str(ROOT))

    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="telemed-dir-")))
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "telemed.settings",
            "DJANGO_ENV": "development",
            "DEBUG": "false",
            "DATABASE_URL": args.database_url,
            "REDIS_URL": args.redis_url,
            "REDIS_KEY_PREFIX": PREFIX,
            "TASK_WORKER_IN_PROCESS": "false",
            "LOG_LEVEL": "WARNING",
            "VAR_DIR": str(workdir / "var"),
        }
        os.environ.update(env)
        import django

        django.setup()  # settings only: the database is created and migrated below
        from django.db import connection, connections

        with contextlib.redirect_stdout(sys.stderr):
            pg_version = hb.ensure_database(args.database_url, fresh=False)
        if not args.keep:
            stack.callback(drop_database, args.database_url)
        stack.callback(lambda: log(f"deleted {delete_redis_keys(args.redis_url)} Redis keys"))
        log("migrating")
        hb.migrate(env, ROOT)
        have = generated_doctors(args.database_url)
        if have >= args.doctors:
            seeding = f"seeding reused ({have} generated doctors already there)"
        else:
            log(f"seeding {args.doctors} doctors ({have} there)")
            seconds, summary = seed(env, args.doctors, args.seed)
            seeding = f"seeded by this run in {seconds:.1f} s (`seed_demo --doctors {args.doctors}`: {summary})"

        with connection.cursor() as cursor:
            # What autovacuum keeps up on a live database: statistics, and the visibility map
            # that lets the search read only its covering index (an index-only scan). A freshly
            # seeded database has no map, and autovacuum may be off where this runs.
            cursor.execute("VACUUM (ANALYZE)")
        size = directory_size()
        anchors = load_anchors(20_000)
        points = Points(anchors, args.seed)
        log(f"{len(anchors)} anchor clinics; in-process comparison over {args.points} points")
        local = in_process(points, args.points, args.radius_km, budget_s=300)
        if args.profile:
            log(profile_requests(points, args.profile, args.radius_km))
        connections.close_all()

        info = {
            **hb.versions(),
            "h3": importlib.metadata.version("h3"),
            "postgresql": pg_version,
            "redis": hb.redis_version(args.redis_url),
        }
        server = hb.Server("uvicorn", env, workdir / "uvicorn.log", ROOT)
        log(f"uvicorn on {server.base}")
        loop = hb._new_loop()
        try:
            server.wait_healthy()
            server.check(INFO)
            lat, lng, code = points.next()
            server.check(f"{SEARCH}?lat={lat}&lng={lng}&radius_km=10&specialty={code}")
            served = loop.run_until_complete(serve_and_load(server, args, points))
        finally:
            loop.close()
            exit_code = server.stop()
            log(f"uvicorn stopped, exit code {exit_code}")
            if exit_code not in (0, -15):
                log(server.output())
        took = time.monotonic() - t_start

    print(report(args, command, started, info, seeding, size, local, served, took))
    return 0


if __name__ == "__main__":
    sys.exit(main())
