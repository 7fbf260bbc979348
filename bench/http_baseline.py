"""HTTP baseline of the platform: Daphne and Uvicorn side by side on ``telemed.asgi:application``.

Run it with ``make bench`` (which runs ``.venv/bin/python bench/http_baseline.py``), or directly::

    .venv/bin/python bench/http_baseline.py                      # everything, ~5 min
    .venv/bin/python bench/http_baseline.py --git-ref HEAD --fresh-db  # the last commit
    .venv/bin/python bench/http_baseline.py --servers uvicorn --endpoints info --duration 5
    .venv/bin/python bench/http_baseline.py --rate info=100,readyz=50 --json /tmp/bench.json

``--help`` lists every option. The figures recorded so far are in ``bench/RESULTS.md``.

It needs PostgreSQL and Redis on loopback (``--database-url``, ``--redis-url``). It creates the
benchmark database if missing and migrates it, then, for each server in turn (never two at
once), starts the server in its own process with the production-like configuration (DEBUG off,
PostgreSQL, Redis, no in-process task worker, access logs off, LOG_LEVEL=WARNING), waits for
``/healthz``, warms up, measures and stops it with SIGTERM.

What is measured, per server and endpoint, with one aiohttp client limited to ``--connections``
keep-alive connections, running in this process (the server runs in another one):

1. **Closed-loop saturation**: every connection sends its next request as soon as the previous
   answer arrives. Its throughput is the most the server delivers with that many connections.
   Its latencies hide queueing (coordinated omission) and are shown for reference only.
2. **Open-loop step-up**: constant-rate runs at growing fractions of that closed-loop maximum,
   until ``--step-patience`` steps in a row fail. The highest rate that completes every request
   without errors and with p99 within ``--slo-p99-ms`` is the maximum sustainable rate. The
   default 200 ms tells "the server fell behind and a queue builds up" from the pauses of a
   full garbage collection (about 100 ms here), which a 5 s step may or may not catch.
3. **Open-loop fixed rate** (in a fresh server process): the same rate for every server, by
   default half of the lowest closed-loop maximum of the servers measured, so that it is below
   saturation for all of them. This is where p50/p95/p99 are reported.

Open loop means request ``i`` is due at ``t0 + i / rate`` whatever happened before, and its
latency is measured from that intended send time, not from when it was actually sent: when
all connections are busy a due request waits for one, and the wait counts. A slow server thus
shows as growing latency instead of as a politely slower client (no coordinated omission).

The machine running this is usually small: the load generator competes with the server for the
same cores, and the tables report how much CPU each used. On a shared machine other work
disturbs runs: before each run the script waits (up to ``--quiet-wait`` s) for a quiet machine,
repeats a run during which other work used more than ``--quiet-cores`` (up to ``--retries``
times, which makes the whole benchmark take longer) and flags it with (!) if it never got a
quiet one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import importlib.metadata
import itertools
import json
import os
import platform
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Latencies use this clock, not the event loop's: uvloop's loop.time() has 1 ms resolution
# and is only updated once per loop iteration.
clock = time.perf_counter

ENDPOINTS = {"info": "/api/v1/info", "readyz": "/readyz", "healthz": "/healthz"}
SERVERS = ("daphne", "uvicorn")
DEPENDENCY_PROCESSES = {"postgres", "redis-server"}
DEPENDENCY_ALLOWANCE = 0.15  # cores of PostgreSQL + Redis our own requests may use
# Beyond 1.0 in case the closed-loop run underestimated (stepping stops after two failures).
DEFAULT_STEPS = "0.5,0.6,0.7,0.8,0.9,1.0,1.1,1.2,1.3,1.4,1.5"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0


# --- Results ---------------------------------------------------------------------------


@dataclass
class Run:
    """One measurement: a closed-loop run (``rate`` is None) or an open-loop one."""

    kind: str  # "closed", "step" or "fixed"
    rate: float | None
    duration: float
    scheduled: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    unsent: int = 0
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    server_cpu: float = 0.0  # cores: the server process
    client_cpu: float = 0.0  # cores: this load generator
    deps_cpu: float = 0.0  # cores: PostgreSQL and Redis
    other_cpu: float = 0.0  # cores: everything else (e.g. other people's test runs)
    attempts: int = 1

    @property
    def error_count(self) -> int:
        return sum(self.errors.values()) + self.unsent

    @property
    def achieved(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def server_ms_per_request(self) -> float:
        """Server CPU time per answered request: unlike latency, hardly moved by other work
        on the machine, so the steadiest figure for comparing servers on a shared machine."""
        return self.server_cpu / self.achieved * 1000 if self.achieved else float("nan")

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the latencies, in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
        return ordered[rank - 1] * 1000

    def sustainable(self, slo_p99_ms: float) -> bool:
        assert self.rate is not None
        return (
            self.unsent == 0
            and self.error_count <= self.scheduled * 0.001
            and self.achieved >= 0.95 * self.rate
            and self.percentile(99) <= slo_p99_ms
        )

    def summary(self) -> dict[str, object]:
        data = asdict(self)
        del data["latencies"]
        data["errors"] = dict(self.errors)
        data.update(
            achieved=round(self.achieved, 1),
            p50_ms=round(self.percentile(50), 2),
            p95_ms=round(self.percentile(95), 2),
            p99_ms=round(self.percentile(99), 2),
            max_ms=round(self.percentile(100), 2),
            server_ms_per_request=round(self.server_ms_per_request, 2),
        )
        return data


@dataclass
class Case:
    server: str
    endpoint: str
    closed: Run | None = None
    steps: list[Run] = field(default_factory=list)
    fixed: Run | None = None
    server_exit: dict[str, int | None] = field(default_factory=dict)

    def max_sustainable(self, slo_p99_ms: float) -> float | None:
        """The highest step rate that was sustainable (None if none was)."""
        passed = [run.rate for run in self.steps if run.sustainable(slo_p99_ms)]
        return max((rate for rate in passed if rate is not None), default=None)


# --- Load generation -------------------------------------------------------------------


async def _fetch(session: aiohttp.ClientSession, url: str) -> str | None:
    """One GET; None when it answered 200, else a short name of what went wrong."""
    try:
        async with session.get(url) as response:
            await response.read()
            return None if response.status == 200 else f"http_{response.status}"
    except TimeoutError:
        return "timeout"
    except aiohttp.ClientError as exc:
        return type(exc).__name__


def _record(run: Run, error: str | None, latency: float) -> None:
    run.latencies.append(latency)
    if error is None:
        run.ok += 1
    else:
        run.errors[error] += 1


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _dependency_seconds() -> float:
    """CPU time of PostgreSQL and Redis, including their exited children (PostgreSQL forks a
    backend per connection, and the app opens one per request with CONN_MAX_AGE=0): a child's
    time moves into its parent's cutime/cstime when it is reaped, so the sum stays right."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:  # exited meanwhile
            continue
        if text[text.find("(") + 1 : text.rfind(")")] not in DEPENDENCY_PROCESSES:
            continue
        fields = text.rsplit(")", 1)[1].split()
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / CLK_TCK


def cpu_speed() -> str:
    """This machine's single-thread Python speed, so that figures from different machines
    (machines of one kind have differed 4-5x on the same pure-Python code, and one machine
    drifts) can be compared: the best of five runs of an addition loop (5,000,000 steps) and
    of an object workload closer to a request's (20,000 small dicts built, sorted, and sent
    through JSON). The loop alone understated a 4.7x slower machine as 1.3x."""
    import json

    def loop() -> None:
        total = 0
        for i in range(5_000_000):
            total += i

    def objects() -> None:
        rows: list[dict[str, Any]] = [
            {"id": i, "name": f"n{i}", "tags": [i % 7, i % 11]} for i in range(20_000)
        ]
        rows.sort(key=lambda row: (row["tags"][1], row["name"]))
        json.loads(json.dumps(rows))

    def best(work: Callable[[], None]) -> float:
        times = []
        for _ in range(5):  # bounded
            t = time.perf_counter()
            work()
            times.append(time.perf_counter() - t)
        return min(times)

    return (
        f"addition loop {best(loop):.2f} s, object workload {best(objects) * 1000:.0f} ms "
        "(best of 5; lower is faster)"
    )


def _busy_seconds() -> float:
    """CPU time the whole machine spent busy (all cores, everything but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / CLK_TCK


async def wait_until_quiet(max_wait: float, max_cores: float) -> float:
    """Wait (at most ``max_wait`` s) until the machine was busy for less than ``max_cores``
    cores during one second, so that other people's test runs do not land in a measurement.
    Returns the busy cores of the last sample."""
    deadline = clock() + max_wait
    while True:  # bounded by ``deadline``
        busy0, wall0 = _busy_seconds(), clock()
        await asyncio.sleep(1.0)
        busy = (_busy_seconds() - busy0) / (clock() - wall0)
        if busy < max_cores or clock() >= deadline:
            return busy


async def closed_loop(
    session: aiohttp.ClientSession, url: str, connections: int, duration: float, kind: str
) -> Run:
    """``connections`` workers, each sending its next request when the last one is answered."""
    run = Run(kind=kind, rate=None, duration=duration)
    start = clock()
    end = start + duration

    async def worker() -> None:
        while clock() < end:  # bounded: each request is bounded by the client timeout
            sent = clock()
            error = await _fetch(session, url)
            _record(run, error, clock() - sent)

    await asyncio.gather(*(worker() for _ in range(connections)))
    run.elapsed = clock() - start
    run.scheduled = run.ok + sum(run.errors.values())
    return run


async def open_loop(
    session: aiohttp.ClientSession,
    url: str,
    connections: int,
    rate: float,
    duration: float,
    drain: float,
    kind: str,
) -> Run:
    """Request ``i`` is due at ``t0 + i / rate``; its latency counts from that due time.

    ``connections`` workers take the due requests in order (a FIFO queue in front of the
    connection pool), so when every connection is busy the next request waits and the wait is
    part of its latency. Requests still unsent ``drain`` seconds after the schedule ends are
    counted as unsent, which also bounds the run when the server falls far behind.
    """
    total = max(1, round(rate * duration))
    run = Run(kind=kind, rate=rate, duration=duration, scheduled=total)
    t0 = clock() + 0.05
    give_up = t0 + duration + drain
    indices = itertools.count()
    last_done = t0

    async def worker() -> None:
        nonlocal last_done
        for i in indices:  # bounded: stops at ``total``
            if i >= total:
                return
            due = t0 + i / rate
            now = clock()
            if now > give_up:
                run.unsent += 1
                continue
            if due > now:
                await asyncio.sleep(due - now)
            error = await _fetch(session, url)
            done = clock()
            _record(run, error, done - due)
            last_done = max(last_done, done)

    await asyncio.gather(*(worker() for _ in range(connections)))
    run.elapsed = max(duration, last_done - t0)
    return run


def _session(connections: int, timeout: float) -> aiohttp.ClientSession:
    # Idle connections are dropped after 2 s, before the server does (Uvicorn and Daphne
    # close a keep-alive connection idle for 5 s; aiohttp would keep it 15 s): a request
    # sent on a connection the server was closing failed (ClientOSError, a POST is not
    # retried), once in the first step after a pause between the booking benchmark's steps.
    connector = aiohttp.TCPConnector(
        limit=connections, limit_per_host=connections, keepalive_timeout=2.0
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


# --- Servers ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command(kind: str, port: int) -> list[str]:
    if kind == "daphne":
        return [
            str(VENV_BIN / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "--access-log",
            os.devnull,
            "telemed.asgi:application",
        ]
    return [
        str(VENV_BIN / "uvicorn"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--lifespan",
        "off",
        "telemed.asgi:application",
    ]


def server_env(args: argparse.Namespace, var_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "telemed.settings",
        "DJANGO_ENV": "development",
        "DEBUG": "false",
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "REDIS_KEY_PREFIX": "telemed-bench",
        "TASK_WORKER_IN_PROCESS": "false",
        "LOG_LEVEL": "WARNING",
        # Development secrets and local media go to a scratch directory, not the work tree.
        "VAR_DIR": str(var_dir),
    }
    for item in args.env:
        name, _, value = item.partition("=")
        env[name] = value
    return env


class Server:
    def __init__(self, kind: str, env: dict[str, str], log: Path, app_dir: Path) -> None:
        self.kind = kind
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._log_file = log.open("wb")
        self.popen = subprocess.Popen(
            server_command(kind, self.port),
            cwd=app_dir,
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def output(self, tail: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-tail:]

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.kind} exited on start:\n{self.output()}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(self.base + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            time.sleep(0.1)
        raise TimeoutError(f"{self.kind} did not answer /healthz in {timeout:.0f}s")

    def check(self, path: str) -> None:
        """Refuse to benchmark an endpoint that does not answer 200 (e.g. /readyz with a
        dependency down): measuring the speed of an error page would mislead."""
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as response:
                if response.status == 200:
                    return
                body = response.read()[:500]
        except urllib.error.HTTPError as exc:
            body = exc.read()[:500]
        raise RuntimeError(f"{self.kind} {path} did not answer 200: {body!r}")

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if it has not exited within STOP_TIMEOUT; its exit code."""
        try:
            if self.popen.poll() is None:
                self.popen.send_signal(signal.SIGTERM)
                try:
                    self.popen.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    print(f"  {self.kind} ignored SIGTERM for {STOP_TIMEOUT:.0f}s, killing it")
                    self.popen.kill()
                    self.popen.wait(5)
            return self.popen.returncode
        finally:
            self._log_file.close()


# --- Preparation -----------------------------------------------------------------------


def ensure_database(database_url: str, fresh: bool) -> str:
    """Create the benchmark database if missing (dropped first when ``fresh``); return the
    PostgreSQL server version."""
    import psycopg

    parts = urllib.parse.urlsplit(database_url)
    name = parts.path.lstrip("/")
    admin_url = urllib.parse.urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as conn:
        if fresh:
            print(f"dropping database {name}")
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            print(f"creating database {name}")
            conn.execute(f'CREATE DATABASE "{name}"')
        version = conn.execute("SHOW server_version").fetchone()
    return str(version[0]) if version else "?"


def migrate(env: dict[str, str], app_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=app_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def export_revision(ref: str, parent: Path) -> Path:
    """A copy of the committed tree at ``ref`` (``git archive``; the repository is only read),
    so that other people's uncommitted edits cannot break or skew the measurement."""
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{ref}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.strip()
    target = parent / commit[:12]
    target.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", commit],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True, timeout=120)
    print(f"benchmarking {ref} = commit {commit[:12]}, exported to {target}")
    return target


def redis_version(redis_url: str) -> str:
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("django", "daphne", "twisted", "uvicorn", "uvloop", "httptools", "channels"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    found["aiohttp (client)"] = aiohttp.__version__
    return found


# --- The benchmark ---------------------------------------------------------------------


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def measure_server(
    kind: str,
    env: dict[str, str],
    workdir: Path,
    endpoints: Sequence[str],
    args: argparse.Namespace,
    cases: dict[tuple[str, str], Case],
    fixed_rates: dict[str, float] | None,
) -> None:
    """Start one server, run the saturation + step-up phase (``fixed_rates`` None) or the
    fixed-rate phase on every endpoint, then stop it."""
    phase = "saturation" if fixed_rates is None else "fixed rate"
    log = workdir / f"{kind}-{phase.replace(' ', '-')}.log"
    server = Server(kind, env, log, args.app_dir)
    print(f"\n== {kind} ({phase}) on {server.base}", flush=True)
    loop = _new_loop()
    try:
        server.wait_healthy()
        for name in endpoints:
            path = ENDPOINTS.get(name, name)
            server.check(path)
            case = cases.setdefault((kind, name), Case(server=kind, endpoint=name))
            loop.run_until_complete(_measure_endpoint(server, case, path, args, fixed_rates))
    finally:
        loop.close()
        code = server.stop()
        print(f"  {kind} stopped, exit code {code}", flush=True)
        for case in cases.values():
            if case.server == kind:
                case.server_exit[phase] = code
        if code not in (0, -signal.SIGTERM):
            print(server.output())


async def _measure_endpoint(
    server: Server,
    case: Case,
    path: str,
    args: argparse.Namespace,
    fixed_rates: dict[str, float] | None,
) -> None:
    url = server.base + path
    conns = args.connections

    async with _session(conns, args.timeout) as session:
        await closed_loop(session, url, conns, args.warmup, "warmup")
        if fixed_rates is not None:
            rate = fixed_rates[case.endpoint]
            case.fixed = await _timed(
                server,
                args,
                args.duration,
                partial(open_loop, session, url, conns, rate, args.duration, args.drain, "fixed"),
            )
            print(f"  {case.endpoint:8} fixed  {_line(case.fixed)}", flush=True)
            return

        closed = await _timed(
            server,
            args,
            args.duration,
            partial(closed_loop, session, url, conns, args.duration, "closed"),
        )
        case.closed = closed
        print(f"  {case.endpoint:8} closed {_line(closed)}", flush=True)
        failures = 0
        for fraction in args.step_fractions:  # bounded: at most 20 fractions
            step_rate = max(1.0, round(closed.achieved * fraction, 1))
            step = await _timed(
                server,
                args,
                args.step_duration,
                partial(
                    open_loop,
                    session,
                    url,
                    conns,
                    step_rate,
                    args.step_duration,
                    args.drain,
                    "step",
                ),
            )
            case.steps.append(step)
            verdict = "ok" if step.sustainable(args.slo_p99_ms) else "NOT sustainable"
            print(f"  {case.endpoint:8} step   {_line(step)} -> {verdict}", flush=True)
            failures = 0 if verdict == "ok" else failures + 1
            if failures >= args.step_patience:
                break


async def _timed(
    server: Server,
    args: argparse.Namespace,
    duration: float,
    measurement: Callable[[], Coroutine[Any, Any, Run]],
) -> Run:
    """Run one measurement within a time budget and note the CPU used meanwhile by the server,
    this load generator, PostgreSQL + Redis, and everything else.

    A run during which other work (PostgreSQL and Redis included: other people's tests use them
    too) used more than ``--quiet-cores`` beyond our own requests was disturbed: it is repeated
    (at most ``--retries`` times, each after waiting up to ``--quiet-wait`` seconds for the
    machine to calm down); the last attempt is kept, and flagged if still disturbed.
    """
    pid = server.popen.pid
    budget = duration + args.drain + args.timeout + 10
    for attempt in range(1, args.retries + 2):  # bounded by --retries
        busy_before = await wait_until_quiet(args.quiet_wait, args.quiet_cores)
        if busy_before >= args.quiet_cores:
            print(f"  (machine still busy: {busy_before:.2f} cores before this run)", flush=True)
        server0, client0 = _cpu_seconds(pid), time.process_time()
        deps0, busy0, wall0 = _dependency_seconds(), _busy_seconds(), clock()
        run = await asyncio.wait_for(measurement(), timeout=budget)
        wall = clock() - wall0
        run.server_cpu = (_cpu_seconds(pid) - server0) / wall
        run.client_cpu = (time.process_time() - client0) / wall
        run.deps_cpu = (_dependency_seconds() - deps0) / wall
        busy = (_busy_seconds() - busy0) / wall
        run.other_cpu = max(0.0, busy - run.server_cpu - run.client_cpu - run.deps_cpu)
        run.attempts = attempt
        if not _is_disturbed(run, args):
            break
        if attempt <= args.retries:
            print(
                f"  (other work used {run.other_cpu:.2f} cores, PostgreSQL + Redis "
                f"{run.deps_cpu:.2f}, during the run: repeating it)",
                flush=True,
            )
    return run


def _is_disturbed(run: Run, args: argparse.Namespace) -> bool:
    """Other work took more than ``--quiet-cores``: everything else on the machine, plus what
    PostgreSQL and Redis did beyond a small allowance for the benchmarked requests themselves
    (about 0.1 core for /readyz here; none for /api/v1/info)."""
    return run.other_cpu + max(0.0, run.deps_cpu - DEPENDENCY_ALLOWANCE) > args.quiet_cores


def _disturbed(run: Run, args: argparse.Namespace) -> str:
    """The other-CPU cell, flagged with (!) when other work disturbed the run."""
    flag = " (!)" if _is_disturbed(run, args) else ""
    return f"{run.other_cpu:.0%}{flag}"


# --- Rates and reporting ---------------------------------------------------------------


def _line(run: Run) -> str:
    target = f"rate {run.rate:7.1f}/s " if run.rate is not None else ""
    errors = f" errors {run.error_count}" + (f" {dict(run.errors)}" if run.errors else "")
    if run.unsent:
        errors += f" unsent {run.unsent}"
    return (
        f"{target}achieved {run.achieved:7.1f}/s  p50 {run.percentile(50):7.1f}  "
        f"p95 {run.percentile(95):7.1f}  p99 {run.percentile(99):7.1f} ms{errors}  "
        f"cpu server {run.server_cpu:.0%} client {run.client_cpu:.0%} "
        f"db+redis {run.deps_cpu:.0%} other {run.other_cpu:.0%}"
    )


def nice_rate(value: float) -> float:
    """Round a rate down to a figure a reader can compare: 10s above 100/s, 5s above 10/s."""
    if value >= 100:
        return float(int(value // 10) * 10)
    if value >= 10:
        return float(int(value // 5) * 5)
    return float(max(1, int(value)))


def parse_rates(text: str, endpoints: Sequence[str]) -> dict[str, float | None]:
    """``auto``, one number for every endpoint, or ``info=100,readyz=50`` (others auto)."""
    rates: dict[str, float | None] = dict.fromkeys(endpoints)
    if text == "auto":
        return rates
    if "=" not in text:
        return dict.fromkeys(endpoints, float(text))
    for item in text.split(","):
        name, _, value = item.partition("=")
        if name not in rates:
            raise SystemExit(f"--rate names {name!r}, which is not among --endpoints")
        rates[name] = None if value == "auto" else float(value)
    return rates


def fixed_rates(
    requested: dict[str, float | None], cases: dict[tuple[str, str], Case]
) -> dict[str, float]:
    """The requested rate, or half of the lowest closed-loop maximum among the servers."""
    chosen: dict[str, float] = {}
    for endpoint, rate in requested.items():
        if rate is not None:
            chosen[endpoint] = rate
            continue
        maxima = [
            c.closed.achieved
            for (_, name), c in cases.items()
            if name == endpoint and c.closed is not None
        ]
        chosen[endpoint] = nice_rate(0.5 * min(maxima))
    return chosen


def _ms(value: float) -> str:
    return "n/a" if value != value else f"{value:.1f}"  # NaN when nothing completed


def _errors(run: Run) -> str:
    if not run.error_count:
        return "0"
    detail = dict(run.errors)
    if run.unsent:
        detail["unsent"] = run.unsent
    return f"{run.error_count} {detail}"


def _sustainable_text(case: Case, slo_p99_ms: float) -> str:
    best = case.max_sustainable(slo_p99_ms)
    if not case.steps:
        return "n/a"
    if best is None:
        return f"< {case.steps[0].rate:.0f}"
    if case.steps[-1].sustainable(slo_p99_ms):  # ran out of steps: a lower bound
        return f">= {best:.0f}"
    return f"{best:.0f}"


def markdown_tables(cases: Sequence[Case], args: argparse.Namespace) -> str:
    slo = args.slo_p99_ms
    out = [
        f"### Summary ({args.connections} connections)",
        "",
        "| server | endpoint | closed-loop max (rps) | max sustainable open-loop "
        f"(rps, p99 <= {slo:.0f} ms) | fixed open-loop rate (rps) | p50 (ms) | p95 (ms) "
        "| p99 (ms) | errors | server CPU | server CPU per request (ms) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for c in cases:
        closed = "n/a"
        if c.closed:
            closed = f"{c.closed.achieved:.0f}{' (!)' if _is_disturbed(c.closed, args) else ''}"
        if c.fixed:
            f = c.fixed
            fixed = (
                f"{f.rate:.0f} | {_ms(f.percentile(50))} | {_ms(f.percentile(95))} | "
                f"{_ms(f.percentile(99))}{' (!)' if _is_disturbed(f, args) else ''} | "
                f"{_errors(f)} | {f.server_cpu:.0%} | {_ms(f.server_ms_per_request)}"
            )
        else:
            fixed = "n/a | | | | | |"
        out.append(
            f"| {c.server} | {c.endpoint} | {closed} | {_sustainable_text(c, slo)} | {fixed} |"
        )

    out += [
        "",
        f"### Closed-loop saturation ({args.connections} connections, {args.duration:g} s; "
        "latencies include coordinated omission)",
        "",
        "| server | endpoint | rps | p50 (ms) | p95 (ms) | p99 (ms) | errors | server CPU "
        "| client CPU | db+redis CPU | other CPU |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for c in cases:
        if r := c.closed:
            out.append(
                f"| {c.server} | {c.endpoint} | {r.achieved:.0f} | {_ms(r.percentile(50))} | "
                f"{_ms(r.percentile(95))} | {_ms(r.percentile(99))} | {_errors(r)} | "
                f"{r.server_cpu:.0%} | {r.client_cpu:.0%} | {r.deps_cpu:.0%} | "
                f"{_disturbed(r, args)} |"
            )

    out += [
        "",
        f"### Open-loop step-up ({args.step_duration:g} s per step, latency from the intended "
        f"send time; sustainable = no errors, >= 95% of the rate achieved, p99 <= {slo:.0f} ms)",
        "",
        "| server | endpoint | target (rps) | achieved (rps) | p50 (ms) | p95 (ms) | p99 (ms) "
        "| errors | server CPU | db+redis CPU | other CPU | sustainable |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    for c in cases:
        for r in c.steps:
            out.append(
                f"| {c.server} | {c.endpoint} | {r.rate:.0f} | {r.achieved:.0f} | "
                f"{_ms(r.percentile(50))} | {_ms(r.percentile(95))} | {_ms(r.percentile(99))} "
                f"| {_errors(r)} | {r.server_cpu:.0%} | {r.deps_cpu:.0%} | "
                f"{_disturbed(r, args)} | "
                f"{'yes' if r.sustainable(slo) else 'no'} |"
            )

    out += [
        "",
        f"### Open-loop fixed rate ({args.duration:g} s, latency from the intended send time)",
        "",
        "| server | endpoint | rate (rps) | achieved (rps) | p50 (ms) | p95 (ms) | p99 (ms) "
        "| max (ms) | errors | server CPU | server CPU per request (ms) | client CPU "
        "| db+redis CPU | other CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for c in cases:
        if r := c.fixed:
            out.append(
                f"| {c.server} | {c.endpoint} | {r.rate:.0f} | {r.achieved:.0f} | "
                f"{_ms(r.percentile(50))} | {_ms(r.percentile(95))} | {_ms(r.percentile(99))} "
                f"| {_ms(r.percentile(100))} | {_errors(r)} | {r.server_cpu:.0%} | "
                f"{_ms(r.server_ms_per_request)} | {r.client_cpu:.0%} | {r.deps_cpu:.0%} | "
                f"{_disturbed(r, args)} |"
            )
    return "\n".join(out)


# --- Command line ----------------------------------------------------------------------


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Daphne vs Uvicorn on telemed.asgi:application: closed-loop saturation, "
        "open-loop step-up and fixed-rate latency.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--servers", type=_csv, default=",".join(SERVERS), help="comma-separated")
    parser.add_argument(
        "--endpoints",
        type=_csv,
        default="info,readyz",
        help=f"names ({', '.join(ENDPOINTS)}) or paths starting with /",
    )
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds of each closed-loop and fixed run"
    )
    parser.add_argument(
        "--step-duration", type=float, default=5.0, help="seconds of each step-up run"
    )
    parser.add_argument(
        "--step-fractions",
        type=lambda text: [float(x) for x in _csv(text)],
        default=DEFAULT_STEPS,
        help="open-loop step-up rates, as fractions of the closed-loop maximum",
    )
    parser.add_argument(
        "--rate",
        default="auto",
        help="fixed open-loop rate: auto (half the lowest closed-loop max), N, or info=N,readyz=M",
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds, closed loop")
    parser.add_argument(
        "--slo-p99-ms", type=float, default=200.0, help="p99 a sustainable step must keep"
    )
    parser.add_argument(
        "--step-patience",
        type=int,
        default=2,
        help="stop stepping up after this many unsustainable steps in a row",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="repeat a run at most this often when other work used more than --quiet-cores",
    )
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=10.0,
        help="before each run, wait up to this many seconds for the machine to be quiet",
    )
    parser.add_argument(
        "--quiet-cores",
        type=float,
        default=0.3,
        help="quiet = fewer than this many cores busy during one second",
    )

    parser.add_argument("--timeout", type=float, default=5.0, help="per request, seconds")
    parser.add_argument(
        "--drain", type=float, default=5.0, help="seconds to finish an open-loop schedule"
    )
    parser.add_argument(
        "--database-url", default="postgres://postgres@127.0.0.1:5432/telemed_bench"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the servers (repeatable), e.g. DB_CONN_MAX_AGE=60",
    )
    parser.add_argument(
        "--git-ref",
        help="benchmark this committed revision (exported with git archive) instead of the "
        "work tree, e.g. HEAD: uncommitted edits then neither break nor skew the run",
    )
    parser.add_argument(
        "--fresh-db", action="store_true", help="drop and recreate the benchmark database first"
    )
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    parser.add_argument("--log-dir", type=Path, help="keep the server logs here")
    args = parser.parse_args(argv)
    for server in args.servers:
        if server not in SERVERS:
            parser.error(f"unknown server {server!r}; choose from {', '.join(SERVERS)}")
    for endpoint in args.endpoints:
        if endpoint not in ENDPOINTS and not endpoint.startswith("/"):
            parser.error(f"unknown endpoint {endpoint!r}")
    if not 1 <= args.connections <= 1024:
        parser.error("--connections must be between 1 and 1024")
    if not (0 < args.duration <= 600 and 0 < args.step_duration <= 600 and args.warmup >= 0):
        parser.error("durations must be positive and at most 600 s")
    if not 0 <= args.retries <= 10 or not 0 <= args.quiet_wait <= 600:
        parser.error("--retries must be 0-10 and --quiet-wait 0-600 s")
    if len(args.step_fractions) > 20:
        parser.error("at most 20 step fractions")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    requested = parse_rates(args.rate, args.endpoints)
    command = shlex.join([".venv/bin/python", "bench/http_baseline.py", *sys.argv[1:]])
    started = datetime.datetime.now(datetime.UTC)
    cores = len(os.sched_getaffinity(0))

    with contextlib.ExitStack() as stack:
        if args.log_dir:
            args.log_dir.mkdir(parents=True, exist_ok=True)
            workdir = args.log_dir
        else:
            workdir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="telemed-bench-"))
            )
        env = server_env(args, workdir / "var")
        args.app_dir = ROOT
        if args.git_ref:
            args.app_dir = export_revision(args.git_ref, workdir / "app")
            revision = f"{args.git_ref} = commit {args.app_dir.name}"
        else:
            revision = "the work tree as it was (uncommitted edits included)"

        pg_version = ensure_database(args.database_url, args.fresh_db)
        print(f"migrating the benchmark database ({args.app_dir})", flush=True)
        migrate(env, args.app_dir)
        info = {
            **versions(),
            "postgresql": pg_version,
            "redis": redis_version(args.redis_url),
        }

        cases: dict[tuple[str, str], Case] = {}
        run_started = time.monotonic()
        for kind in args.servers:
            measure_server(kind, env, workdir, args.endpoints, args, cases, None)
        rates = fixed_rates(requested, cases)
        print(f"\nfixed open-loop rates: {rates}", flush=True)
        # Reverse order (A B B A), so that a drift in what else the machine does during the
        # benchmark does not favour the server measured first.
        for kind in reversed(args.servers):
            measure_server(kind, env, workdir, args.endpoints, args, cases, rates)
        took = time.monotonic() - run_started

    ordered = [cases[(s, e)] for s in args.servers for e in args.endpoints if (s, e) in cases]
    header = [
        "## HTTP baseline (platform)",
        "",
        f"- command: `{command}`",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; measuring took {took:.0f} s",
        f"- machine: {cores} cores (nproc), {platform.machine()}, {platform.system()} "
        f"{platform.release()}; CPU speed: {cpu_speed()}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        f"- application: {revision}",
        f"- load: {args.connections} connections, aiohttp client in its own process on the "
        "same cores as the server",
        "- CPU columns: share of one core used during the run by the server process, by the "
        "load generator, by PostgreSQL + Redis, and by everything else on the machine; "
        f"(!) marks a run that other work disturbed (more than {args.quiet_cores:g} cores, "
        "counting PostgreSQL + Redis beyond "
        f"{DEPENDENCY_ALLOWANCE:g} cores) even after {args.retries} repetitions",
        "",
        "",
    ]
    report = "\n".join(header) + markdown_tables(ordered, args)
    print("\n" + report)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "command": command,
                    "date": started.isoformat(),
                    "cores": cores,
                    "versions": info,
                    "application": revision,
                    "fixed_rates": rates,
                    "cases": [
                        {
                            "server": c.server,
                            "endpoint": c.endpoint,
                            "server_exit": c.server_exit,
                            "max_sustainable_rps": c.max_sustainable(args.slo_p99_ms),
                            "closed": c.closed.summary() if c.closed else None,
                            "steps": [s.summary() for s in c.steps],
                            "fixed": c.fixed.summary() if c.fixed else None,
                        }
                        for c in ordered
                    ],
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
