"""Real-time gateway: sockets held, booking-to-alert latency, notification fan-out.

    .venv/bin/python bench/gateway.py                  # ~4 minutes, seeding included
    .venv/bin/python bench/gateway.py --help           # every option

Needs PostgreSQL (127.0.0.1:5432, user postgres) and Redis (127.0.0.1:6379) on loopback.
Creates its own database ``telemed_bench_realtime`` (dropped first if there, dropped at the
end) and deletes only its own Redis keys (a random ``REDIS_KEY_PREFIX``). Every loop is
bounded in count and time.

One Uvicorn process (the production server, as the Dockerfile runs it: ``uvicorn
telemed.asgi:application --no-access-log --lifespan off``), DEBUG off, PostgreSQL with the
psycopg pool, the Redis pub/sub channel layer, no task worker (deliveries stay queued).
The sockets are held by a separate client process (``websockets``), which only stamps each
frame's arrival (``time.time()``) and parses after the run; the load comes from this process.

1. **Sockets held**: ``--sockets`` authenticated sockets (``Authorization: Bearer``; one user
   each: the doctors and patients), opened 100 at a time, held ``--hold`` s; the server's
   RSS before and after gives memory per connection; the server's own gauge
   (``telemed_websocket_connections`` on ``/metrics``) and the client count the open ones.
2. **Booking to alert**: with every socket still open, ``POST /api/v1/appointments`` at
   each ``--rate`` (a comma-separated list) for ``--duration`` s (open loop: request ``i`` is due at ``t0 + i/rate``),
   each by a different patient on a distinct free slot of one of ``--doctors`` doctors. The
   latency of an alert is from the request's *due* time to the arrival of ``booking.created``
   for that appointment on the doctor's socket; the patient's own copy is counted too. Lost =
   a 201 whose event did not arrive within ``--drain`` s.
3. **Fan-out**: ``realtime.services.notify`` (the service every app calls) to ``--fanout``
   online users, ``--fanouts`` times at ``--fanout-rate``/s (open loop, from this process on
   the same database and Redis), after one unmeasured warm-up fan-out and with this process's
   heap frozen (``gc.freeze()``: its full collections would land inside measured calls);
   latency from each call's due time to each arrival.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import math
import multiprocessing as mp
import os
import platform
import shlex
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "telemed_bench_realtime"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
PREFIX = f"telemed-bench-realtime-{uuid.uuid4().hex[:8]}"
BOOK = "/api/v1/appointments"
SLOTS_PER_DAY = 48  # 08:00-20:00, 15 minutes


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- The socket holder (its own process) ---------------------------------------------------


async def open_sockets(
    ws_url: str, labelled: list[tuple[int, str]], opened: Callable[[int, Any], None]
) -> float:
    """One socket per ``(label, access token)`` (``Authorization: Bearer``), 100 at a time;
    ``opened(label, socket)`` for each. Returns the seconds it took."""
    import websockets

    async def open_one(label: int, token: str) -> None:
        ws = await websockets.connect(
            ws_url,
            additional_headers={"Authorization": f"Bearer {token}"},
            open_timeout=60,
            ping_interval=None,
            max_queue=None,
        )
        opened(label, ws)

    started = time.monotonic()
    for first in range(0, len(labelled), 100):
        await asyncio.gather(*(open_one(i, t) for i, t in labelled[first : first + 100]))
    return time.monotonic() - started


async def _hold(ws_url: str, tokens: list[str], conn: Any) -> None:
    import websockets

    arrivals: list[tuple[int, float, str]] = []
    sockets: list[Any] = []
    closed: list[int] = []

    async def reader(i: int, ws: Any) -> None:
        try:
            async for frame in ws:
                arrivals.append((i, time.time(), frame))
        except websockets.ConnectionClosed:
            pass
        closed.append(i)

    def opened(i: int, ws: Any) -> None:
        sockets.append(ws)
        asyncio.get_running_loop().create_task(reader(i, ws))

    took = await open_sockets(ws_url, list(enumerate(tokens)), opened)
    # The sockets' objects frozen: a full collection of them would stamp arrivals late. The
    # longest collection since the last "take" is reported with the arrivals.
    gc.collect()
    gc.freeze()
    conn.send(("opened", len(sockets), took))
    loop = asyncio.get_running_loop()
    with gc_pauses() as pauses:  # the collections since the last "take"
        while True:
            command = await loop.run_in_executor(None, conn.recv)
            if command == "count":
                conn.send(("open", len(sockets) - len(closed)))
            elif command == "ping":  # a heartbeat on every socket
                await asyncio.gather(*(ws.send('{"type": "presence.ping"}') for ws in sockets))
                conn.send(("pinged", len(sockets)))
            elif command == "take":
                taken, arrivals[:] = list(arrivals), []
                conn.send(("arrivals", taken, max(pauses, default=0.0)))
                pauses.clear()
            elif command == "stop":
                await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
                conn.send(("stopped", len(closed)))
                return


def hold_sockets(ws_url: str, tokens: list[str], conn: Any) -> None:
    asyncio.run(_hold(ws_url, tokens, conn))


# --- Helpers ---------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[index]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def gauge(base: str) -> float:
    with urllib.request.urlopen(base + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("telemed_websocket_connections "):
                return float(line.split()[1])
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def cpu_sampler(pid: int, every: float = 1.0) -> Iterator[list[tuple[float, float]]]:
    """``(wall time, the process's CPU seconds)`` every ``every`` s while the block runs."""
    import threading

    series: list[tuple[float, float]] = [(time.time(), cpu_seconds(pid))]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(every):
            series.append((time.time(), cpu_seconds(pid)))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield series
    finally:
        stop.set()
        thread.join()


def late_seconds(
    alerts: list[tuple[float, float]], cpu: list[tuple[float, float]], over: float = 100.0
) -> str:
    """The seconds (by due time, from the first due) whose alerts had a p99 over ``over`` ms,
    each with the server's CPU in that second: where an overload episode starts and ends."""
    if not alerts:
        return "no alerts"
    first = min(due for due, _ in alerts)
    by_second: dict[int, list[float]] = {}
    for due, ms in alerts:
        by_second.setdefault(int(due - first), []).append(ms)

    def cpu_in(second: int) -> float:
        start, end = first + second, first + second + 1
        inside = [(t, c) for t, c in cpu if start - 0.5 <= t <= end + 0.5]
        if len(inside) < 2:
            return float("nan")
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0]) * 100

    cpu_by_second = {k: cpu_in(k) for k in by_second}
    late = [
        f"+{k} s: p99 {pct(v, 99):.0f} ms, CPU {cpu_by_second[k]:.0f}%"
        for k, v in sorted(by_second.items())
        if pct(v, 99) > over
    ]
    measured = [c for c in cpu_by_second.values() if not math.isnan(c)]
    busiest = max(measured, default=float("nan"))
    return (
        f"seconds with an alert p99 over {over:.0f} ms: {'; '.join(late) or 'none'} "
        f"(busiest second of the server: {busiest:.0f}%)"
    )


def summary(values: list[float]) -> str:
    return (
        f"{pct(values, 50):.1f} | {pct(values, 95):.1f} | {pct(values, 99):.1f} | "
        f"{max(values) if values else float('nan'):.1f}"
    )


def slot_start(k: int) -> dt.datetime:
    from zoneinfo import ZoneInfo

    cairo = ZoneInfo("Africa/Cairo")
    day = dt.datetime.now(cairo).date() + dt.timedelta(days=2 + k // SLOTS_PER_DAY)
    minutes = 8 * 60 + (k % SLOTS_PER_DAY) * 15
    return dt.datetime.combine(day, dt.time(minutes // 60, minutes % 60), tzinfo=cairo)


def request(holder: Any, command: str) -> Any:
    holder.send(command)
    return holder.recv()


def prepare(
    stack: contextlib.ExitStack, redis_url: str, workdir: Path, **extra: str
) -> dict[str, str]:
    """The benchmark's environment (``booking.bench_env``, with ``extra``) in this process too,
    Django set up, its database created and migrated; dropped (and its Redis keys deleted) when
    ``stack`` closes. Set ``booking.DB_NAME``, ``DATABASE_URL`` and ``PREFIX`` first."""
    import booking as bk
    import http_baseline as hb

    env = bk.bench_env(redis_url, workdir / "var", **extra)
    os.environ.update(env)
    import django

    django.setup()
    log(f"creating database {bk.DB_NAME}")
    bk.create_database()
    stack.callback(bk.drop_database)
    stack.callback(lambda: log(f"deleted {bk.delete_redis_keys(redis_url)} Redis keys"))
    hb.migrate(env, ROOT)
    return env


def start_server(
    stack: contextlib.ExitStack, env: dict[str, str], workdir: Path
) -> tuple[Any, int]:
    """One Uvicorn process, stopped when ``stack`` closes, warmed up; and its RSS then (KiB)."""
    import http_baseline as hb

    server = hb.Server("uvicorn", env, workdir / "uvicorn.log", ROOT)
    stack.callback(server.stop)
    server.wait_healthy()
    for _ in range(20):  # warm the app (imports, pools) before the RSS baseline
        urllib.request.urlopen(server.base + "/api/v1/info", timeout=10).read()
    time.sleep(1)
    return server, rss_kib(server.popen.pid)


# --- Phases ----------------------------------------------------------------------------------


async def bookings(
    base: str, plan: list[tuple[str, str, str, str]], rate: float
) -> tuple[list[dict], list[float]]:
    """``plan``: (doctor id, doctor's socket label, patient token, start) per booking. The
    results, and how late (ms) each request left this process."""
    import aiohttp

    results: list[dict] = []
    sent: list[float] = []  # how late (ms) this process sent each request
    connector = aiohttp.TCPConnector(limit=128)
    async with aiohttp.ClientSession(
        base_url=base, connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        t0_wall, t0 = time.time() + 0.5, time.monotonic() + 0.5

        async def one(i: int, doctor_id: str, token: str, start: str) -> None:
            await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
            due = t0_wall + i / rate
            body = {"doctor_id": doctor_id, "start": start, "mode": "in_person"}
            sent.append((time.time() - due) * 1000)
            try:
                async with session.post(
                    BOOK, json=body, headers={"Authorization": f"Bearer {token}"}
                ) as r:
                    payload = await r.json()
                    results.append(
                        {
                            "i": i,
                            "status": r.status,
                            "id": payload.get("id"),
                            "due": due,
                            "answered": time.time(),
                        }
                    )
            except Exception as exc:  # recorded, never raised: an open loop keeps going
                results.append({"i": i, "status": type(exc).__name__, "id": None, "due": due})

        await asyncio.gather(*(one(i, d, t, s) for i, (d, _, t, s) in enumerate(plan)))
    return results, sent


async def fanouts(users: list[Any], count: int, rate: float) -> tuple[list[float], list[float]]:
    """Due times of ``count`` notify() calls to ``users``; the calls run in a thread, one
    after another, so a slow call makes the next one late (and that lateness is measured)."""
    from asgiref.sync import sync_to_async

    from realtime.services import notify

    dues: list[float] = []
    returned: list[float] = []
    t0_wall, t0 = time.time() + 0.5, time.monotonic() + 0.5
    for j in range(count):
        await asyncio.sleep(max(0.0, t0 + j / rate - time.monotonic()))
        dues.append(t0_wall + j / rate)
        await sync_to_async(notify, thread_sensitive=True)(
            users=users,
            kind="notification.created",
            data={"fanout": j},
            render=lambda u: ("Clinic news", "The clinic is closed on Friday."),
        )
        returned.append(time.time())  # stored, committed and published
    return dues, returned


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sockets", type=int, default=2000, help="sockets held (one user each)")
    p.add_argument("--doctors", type=int, default=50)
    p.add_argument("--hold", type=float, default=30.0, help="seconds to hold before the load")
    p.add_argument("--rate", default="50,30", help="bookings per second, one run per rate")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of bookings per rate")
    p.add_argument("--quiet-wait", type=float, default=90.0, help="wait for a quiet machine")
    p.add_argument("--fanout", type=int, default=500, help="recipients of each fan-out")
    p.add_argument("--fanouts", type=int, default=20, help="fan-outs")
    p.add_argument("--fanout-rate", type=float, default=1.0, help="fan-outs per second")
    p.add_argument("--drain", type=float, default=10.0, help="seconds to wait for late events")
    common_options(p)
    p.add_argument("--profile-server", default="", help="run Uvicorn under cProfile, to this file")
    return p.parse_args(argv)


def common_options(p: argparse.ArgumentParser) -> None:
    """Options of every benchmark that uses :func:`prepare`."""
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument("--out", default="", help="also write the markdown section to this file")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([".venv/bin/python", "bench/gateway.py", *sys.argv[1:]])
    sys.path.insert(0, str(ROOT))
    import booking as bk  # bench/booking.py: database, seeding and token minting
    import http_baseline as hb

    bk.DB_NAME, bk.DATABASE_URL, bk.PREFIX = DB_NAME, DATABASE_URL, PREFIX
    patients_n = args.sockets - args.doctors
    rates = [float(r) for r in args.rate.split(",")]
    bookings_n = int(sum(rates) * args.duration)
    if bookings_n > patients_n or args.fanout > patients_n:
        raise SystemExit("more bookings or fan-out recipients than patients with a socket")
    out: list[str] = []
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="telemed-rt-")))
        # Access tokens outlive the run.
        env = prepare(stack, args.redis_url, workdir, JWT_ACCESS_TOKEN_TTL="7200")
        from django.contrib.auth.hashers import make_password

        from accounts.models import Role

        log("seeding")
        password_hash = make_password("Bench-realtime-2026-pw")
        doctors = [d for d, _ in bk.seed_simple_doctors(args.doctors, "rtdoctor", password_hash)]
        patients = bk.make_users(patients_n, Role.PATIENT, "rtpatient", password_hash)
        users = [d.user for d in doctors] + patients
        log(f"minting {len(users)} sessions")
        tokens = bk.mint_tokens(users)
        from django.db import connection, connections

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        connections.close_all()

        if args.profile_server:  # the same server under cProfile (written when it stops)
            command_of = hb.server_command
            hb.server_command = lambda kind, port: [
                sys.executable,
                "-m",
                "cProfile",
                "-o",
                args.profile_server,
                *command_of(kind, port),
            ]
        # The server reports its long garbage collections (bench/gcprobe/sitecustomize.py).
        gc_log = workdir / "server-gc.log"
        path = os.pathsep.join(filter(None, [str(ROOT / "bench/gcprobe"), env.get("PYTHONPATH")]))
        stall_log = workdir / "server-stalls.log"
        probed = {
            **env,
            "PYTHONPATH": path,
            "BENCH_GC_LOG": str(gc_log),
            "BENCH_STALL_LOG": str(stall_log),
        }
        server, rss_before = start_server(stack, probed, workdir)
        pid = server.popen.pid

        # 1. Sockets held.
        parent, child = mp.get_context("spawn").Pipe()
        ws_url = server.base.replace("http://", "ws://") + "/ws/v1/"
        holder = mp.get_context("spawn").Process(
            target=hold_sockets, args=(ws_url, tokens, child), daemon=True
        )
        holder.start()
        child.close()  # so that the holder's death ends recv() here with EOFError
        stack.callback(lambda: holder.join(30) if holder.is_alive() else None)
        _, opened, open_s = parent.recv()
        log(f"{opened} sockets open in {open_s:.1f} s")
        time.sleep(5)
        rss_open = rss_kib(pid)
        server_gauge = gauge(server.base)
        log(f"holding {args.hold:.0f} s (a heartbeat on every socket half-way)")
        time.sleep(args.hold / 2)
        request(parent, "ping")
        time.sleep(args.hold / 2)
        _, still_open = request(parent, "count")
        rss_held = rss_kib(pid)
        request(parent, "take")  # presence events and the like

        # 2. Booking to alert, at each rate.
        label = {str(u.pk): i for i, u in enumerate(users)}
        booking_rows: list[str] = []
        lost_total = 0
        offset = 0
        for rate in rates:
            count = int(rate * args.duration)
            plan = []
            for i in range(offset, offset + count):
                doctor = doctors[i % args.doctors]
                start = slot_start(i // args.doctors).isoformat()
                plan.append((str(doctor.id), str(doctor.user.pk), tokens[args.doctors + i], start))
            quiet = asyncio.run(hb.wait_until_quiet(args.quiet_wait, 0.6))
            log(
                f"booking at {rate:.0f}/s for {args.duration:.0f} s (machine busy {quiet:.2f} cores)"
            )
            # This process's heap (the seeded users, sessions, tokens) frozen, as for the
            # fan-out: a full collection of it would make the first requests leave late.
            gc.collect()
            gc.freeze()
            cpu0, busy0 = cpu_seconds(pid), hb._busy_seconds()
            t_load, wall0 = time.monotonic(), time.time()
            with cpu_sampler(pid) as cpu_series, gc_pauses() as own_pauses:
                results, send_lag = asyncio.run(bookings(server.base, plan, rate))
            book_gcs = server_collections(gc_log, wall0, time.time())
            book_stalls = server_stalls(stall_log, wall0, time.time())
            took = time.monotonic() - t_load
            book_cpu = (cpu_seconds(pid) - cpu0) / took
            busy = (hb._busy_seconds() - busy0) / took
            time.sleep(args.drain)
            _, arrivals, holder_gc = request(parent, "take")
            seen: dict[tuple[int, str], float] = {}
            for i, at, frame in arrivals:
                event = json.loads(frame)
                if event.get("type") == "booking.created":
                    seen.setdefault((i, event["data"]["appointment_id"]), at)
            alert: list[float] = []
            patient_alert: list[float] = []
            alert_at: list[tuple[float, float]] = []  # (due, latency) of the doctor's alerts
            http_ms: list[float] = []
            after_http: list[float] = []
            lost = 0
            for r in results:
                if r["status"] != 201:
                    continue
                doctor_label = label[plan[r["i"]][1]]
                http_ms.append((r["answered"] - r["due"]) * 1000)
                for lab, bucket in (
                    (doctor_label, alert),
                    (args.doctors + offset + r["i"], patient_alert),
                ):
                    at = seen.get((lab, r["id"]))
                    if at is None:
                        lost += 1
                    else:
                        bucket.append((at - r["due"]) * 1000)
                        if lab == doctor_label:
                            after_http.append((at - r["answered"]) * 1000)
                            alert_at.append((r["due"], (at - r["due"]) * 1000))
            statuses: dict[str, int] = {}
            for r in results:
                statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
            lost_total += lost
            offset += count
            gcs = ", ".join(f"{ms:.0f} ms at +{at - wall0:.1f} s" for at, ms in book_gcs) or "none"
            gcs += f"; {stalls_text(book_stalls)}; {late_seconds(alert_at, cpu_series)}"
            gcs += (
                f"; this load generator sent late by p99 {pct(send_lag, 99):.1f} ms, max "
                f"{max(send_lag, default=0):.1f} ms; its longest collection "
                f"{max(own_pauses, default=0):.1f} ms; the socket holder's {holder_gc:.1f} ms"
            )
            booking_rows += [
                f"| {rate:.0f}/s | `booking.created` on the doctor's socket | {len(alert)} | "
                f"{summary(alert)} | {book_cpu * 100:.0f}% | {busy:.2f} | {statuses} | {lost} "
                f"| {gcs} |",
                f"| {rate:.0f}/s | `booking.created` on the patient's socket | {len(patient_alert)} "
                f"| {summary(patient_alert)} | | | | | |",
                f"| {rate:.0f}/s | HTTP 201 answered | {len(http_ms)} | {summary(http_ms)} | | | | | |",
                f"| {rate:.0f}/s | doctor's alert, counted from the 201 instead | {len(after_http)} "
                f"| {summary(after_http)} | | | | | |",
            ]

        # 3. Fan-out.
        recipients = patients[: args.fanout]
        fan_label = {label[str(u.pk)] for u in recipients}
        log(f"fan-out to {args.fanout} users x {args.fanouts} at {args.fanout_rate}/s")
        from django.db import close_old_connections

        close_old_connections()
        asyncio.run(fanouts(recipients, 1, 1.0))  # warm-up (connections, code paths), unmeasured
        # notify() runs in this process, whose heap holds the whole run (users, sessions,
        # results): one full collection of it took ~100 ms inside a measured call. Frozen,
        # the collector skips it; what it still does during the fan-out is reported.
        gc.collect()
        gc.freeze()
        time.sleep(2)
        request(parent, "take")
        fan_quiet = asyncio.run(hb.wait_until_quiet(args.quiet_wait, 0.6))
        cpu0, busy0 = cpu_seconds(pid), hb._busy_seconds()
        t_fan = time.monotonic()
        with gc_pauses() as pauses:
            dues, returned = asyncio.run(fanouts(recipients, args.fanouts, args.fanout_rate))
        call_ms = [(r - d) * 1000 for r, d in zip(returned, dues, strict=True)]
        fan_took = time.monotonic() - t_fan
        fan_cpu = (cpu_seconds(pid) - cpu0) / fan_took
        fan_busy = (hb._busy_seconds() - busy0) / fan_took
        time.sleep(args.drain)
        _, arrivals, fan_holder_gc = request(parent, "take")
        fan_ms: list[float] = []
        after_call_ms: list[float] = []
        got: set[tuple[int, int]] = set()
        for i, at, frame in arrivals:
            event = json.loads(frame)
            if event.get("type") == "notification.created" and i in fan_label:
                j = event["data"]["fanout"]
                if (i, j) not in got:
                    got.add((i, j))
                    fan_ms.append((at - dues[j]) * 1000)
                    after_call_ms.append((at - returned[j]) * 1000)
        fan_lost = args.fanout * args.fanouts - len(got)
        server_gcs = server_collections(gc_log, dues[0], returned[-1] + args.drain)
        fan_stalls = server_stalls(stall_log, dues[0], returned[-1] + args.drain)
        _, open_at_end = request(parent, "count")
        request(parent, "stop")
        holder.join(30)
        if args.profile_server:  # let Uvicorn return, so that cProfile writes its file
            import signal

            server.popen.send_signal(signal.SIGINT)
            server.popen.wait(60)

        per_conn = (rss_open - rss_before) / max(1, opened)
        out += [
            *run_header(command),
            f"{os.cpu_count()} cores (shared: the socket-holding client, this load generator, "
            f"Uvicorn, PostgreSQL and Redis all on them; other engineers' test runs were on "
            f"the machine too), Python {platform.python_version()}, one Uvicorn process.",
            "",
            "**Sockets held**",
            "",
            "| sockets opened | open after the hold (client) | server gauge | time to open | "
            "server RSS before | with sockets | after the hold | per connection |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {opened} | {still_open} | {server_gauge:.0f} | {open_s:.1f} s | "
            f"{rss_before / 1024:.0f} MiB | {rss_open / 1024:.0f} MiB | {rss_held / 1024:.0f} MiB "
            f"| {per_conn:.1f} KiB |",
            "",
            f"**Booking to alert** (bookings due at each rate for {args.duration:.0f} s, each by "
            f"another patient on a distinct slot of {args.doctors} doctors, every socket open)",
            "",
            "| rate | latency from the due time (ms) | n | p50 | p95 | p99 | max | server CPU "
            "(one core = 100%) | machine busy (cores) | statuses | events lost "
            "| server's full collections; stalls |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|",
            *booking_rows,
            "",
            f"Events lost over all rates (a 201 without its `booking.created` on the doctor's or "
            f"the patient's socket within {args.drain:.0f} s): **{lost_total}**.",
            "",
            f"**Fan-out** ({args.fanouts} x `notify()` to {args.fanout} online users at "
            f"{args.fanout_rate}/s; server CPU {fan_cpu * 100:.0f}% of one core; the machine "
            f"was busy {fan_quiet:.2f} cores before and {fan_busy:.2f} cores during it)",
            "",
            "| latency from the due time (ms) | n | p50 | p95 | p99 | max |",
            "|---|---:|---:|---:|---:|---:|",
            f"| `notification.created` on each recipient's socket | {len(fan_ms)} | "
            f"{summary(fan_ms)} |",
            f"| of which: `notify()` returned (stored, committed, published) | {len(call_ms)} | "
            f"{summary(call_ms)} |",
            f"| of which: from `notify()`'s return to each arrival | {len(after_call_ms)} | "
            f"{summary(after_call_ms)} |",
            "",
            f"Events lost: **{fan_lost}** of {args.fanout * args.fanouts}. Sockets still open "
            f"at the end (client): {open_at_end} of {opened}. Each `notify()` in call order, "
            f"due to return (ms): {', '.join(f'{ms:.0f}' for ms in call_ms)}. Garbage "
            f"collections in this load generator meanwhile: {len(pauses)}, the longest "
            f"{max(pauses, default=0):.1f} ms; the longest in the socket-holding client "
            f"{fan_holder_gc:.1f} ms. Full collections in the server from the first "
            f"due time to the end of the drain: "
            f"{', '.join(f'{ms:.0f} ms at +{at - dues[0]:.1f} s' for at, ms in server_gcs) or 'none'}"
            f"; {stalls_text(fan_stalls)}.",
            "",
        ]
    return emit("\n".join(out), args.out)


@contextlib.contextmanager
def gc_pauses() -> Iterator[list[float]]:
    """The duration (ms) of each garbage collection of this process meanwhile."""
    pauses: list[float] = []
    started = [0.0]

    def timed(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((time.perf_counter() - started[0]) * 1000)

    gc.callbacks.append(timed)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(timed)


def _logged(log: Path, start: float, end: float, at: int) -> list[list[str]]:
    """The fields of each line of a ``bench/gcprobe`` log whose wall time (field ``at``) lies
    in ``[start, end]``."""
    with contextlib.suppress(FileNotFoundError):
        rows = [line.split() for line in log.read_text().splitlines()]
        return [row for row in rows if start <= float(row[at]) <= end]
    return []


def server_collections(log: Path, start: float, end: float) -> list[tuple[float, float]]:
    """(wall time it ended, ms) of each full collection the server logged in ``[start, end]``."""
    return [(float(at), float(ms)) for gen, ms, at in _logged(log, start, end, 2) if gen == "2"]


def server_stalls(log: Path, start: float, end: float) -> list[float]:
    """Lengths (ms) of the stalls the server's probe thread logged in ``[start, end]``: times
    it woke 30 ms or more late, the interpreter being held by something else meanwhile."""
    return [float(row[2]) for row in _logged(log, start, end, 0)]


def stalls_text(stalls: list[float]) -> str:
    if not stalls:
        return "no stall of 30 ms or more"
    return f"{len(stalls)} stalls of 30 ms or more, the longest {max(stalls):.0f} ms"


def run_header(command: str) -> list[str]:
    """A run's heading (its UTC time), its exact command and the machine's CPU speed, as
    markdown lines."""
    import http_baseline as hb

    return [
        f"### Run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        "```",
        command,
        "```",
        "",
        f"CPU speed: {hb.cpu_speed()}.",
        "",
    ]


def emit(text: str, out: str) -> int:
    """The markdown section on stdout (and to ``out`` if given); the exit status."""
    print(text)
    if out:
        Path(out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
