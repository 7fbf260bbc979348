"""Chat delivery: 1,000 connected chat clients in 500 conversations, open-loop messages.

    .venv/bin/python bench/chat_delivery.py            # ~5-8 minutes, seeding included
    .venv/bin/python bench/chat_delivery.py --help     # every option

Needs PostgreSQL (127.0.0.1:5432, user postgres) and Redis (127.0.0.1:6379) on loopback.
Creates its own database ``telemed_bench_chat`` (dropped first if there, dropped at the end)
and deletes only its own Redis keys (a random ``REDIS_KEY_PREFIX``). Every loop is bounded in
count and time.

The server is what ``bench/gateway.py`` starts: one Uvicorn process (the production server),
DEBUG off, PostgreSQL with the psycopg pool, the Redis pub/sub channel layer, no task worker.
Its per-user send limit is raised (``CHAT_SEND_RATE_LIMIT``, see ``--send-limit``) so that the
benchmark measures delivery, not the limiter.

Seeded in process with the ORM: ``--conversations`` patients and as many doctors, each pair in
care together (a confirmed video appointment yesterday) with one conversation
(``chat.services.conversation_open``). Every user holds one authenticated socket
(``Authorization: Bearer``) in ``--clients`` separate client processes (``websockets``),
which send on schedule and only stamp each frame's arrival (``time.time()``); the frames are
parsed here after each phase. Like an app, every socket keeps its user online with a
``presence.ping`` every ``--ping`` s (the server forgets a presence after
``PRESENCE_TTL_SECONDS``, 60), each at its own phase; without them every user would go
offline a minute in, and each message would then also store a notification.

Message ``i`` of a phase goes to conversation ``i mod N``, sent by its patient and its doctor
in turn (``chat.send`` with a unique ``client_id`` and the index in the text), and is due at
``t0 + i/rate`` (open loop: a late client or server makes later messages late, and that is
measured). Its **delivery latency** is the arrival of its ``chat.message`` on the OTHER
participant's socket minus that due time. Counted by the benchmark itself, on every
participant's socket (the sender's own socket gets the ``chat.message`` too): **lost** (a
delivery that did not arrive by the end of the drain), **duplicated** (the same conversation
and ``seq`` twice on one socket), **out of order** (a ``seq`` lower than one already seen for
that conversation on that socket), **misrouted** (a ``chat.message`` on a socket of neither
participant) and, at the end, **gaps** (a conversation's ``seq`` numbers seen on a socket not
being 1..last).

Phases: a warm-up (one message in each conversation, which also stores and pushes the
recipient's batched ``chat.unread`` notification), the main run at ``--rate`` for
``--duration`` s, then steps of ``--steps`` rates for ``--step-duration`` s each, in
ascending order, until the first whose p99 exceeds ``--target-ms`` twice in a row (the knee:
a step that misses once is run again, so that one stall of a shared machine does not set it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import json
import multiprocessing as mp
import os
import platform
import random
import shlex
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "telemed_bench_chat"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
PREFIX = f"telemed-bench-chat-{uuid.uuid4().hex[:8]}"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def route(i: int, conversations: int) -> tuple[int, int]:
    """Message ``i``: (its conversation, 0 if the patient sends it else 1)."""
    return i % conversations, (i // conversations) % 2


# --- The clients (their own processes) -------------------------------------------------------


async def _clients(
    ws_url: str,
    users: list[tuple[int, str]],
    conversation_ids: list[str],
    conn: Any,
    ping_every: float,
) -> None:
    """Hold one socket per ``(label, token)``; labels ``0..N-1`` are the patients of
    conversations ``0..N-1`` and ``N..2N-1`` their doctors. On ``("run", first, count, t0,
    rate)`` send, on schedule, the messages of ``first..first+count-1`` whose sender is here.
    Every socket sends ``presence.ping`` every ``ping_every`` s (0: never), as an app keeps
    its user online, each at its own phase (sockets opened together do not ping together)."""
    import gateway as gw
    import websockets

    n = len(conversation_ids)
    arrivals: list[tuple[int, float, str]] = []
    sent: list[tuple[int, float]] = []
    sockets: dict[int, Any] = {}
    closed: list[int] = []
    delivered = 0  # chat.message frames received, counted cheaply while running

    async def reader(label: int, ws: Any) -> None:
        nonlocal delivered
        try:
            async for frame in ws:
                arrivals.append((label, time.time(), frame))
                if '"chat.message"' in frame:
                    delivered += 1
        except websockets.ConnectionClosed:
            pass
        closed.append(label)

    def opened(label: int, ws: Any) -> None:
        sockets[label] = ws
        asyncio.get_running_loop().create_task(reader(label, ws))

    async def send_on_schedule(first: int, count: int, t0_wall: float, rate: float) -> None:
        t0 = time.monotonic() + (t0_wall - time.time())
        for i in range(first, first + count):  # bounded by ``count``
            c, side = route(i, n)
            label = c + side * n
            if label not in sockets:
                continue
            delay = t0 + (i - first) / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            frame = json.dumps(
                {
                    "type": "chat.send",
                    "conversation_id": conversation_ids[c],
                    "text": f"bench message {i}",
                    "client_id": f"m{i}",
                }
            )
            sent.append((i, time.time()))
            with contextlib.suppress(websockets.ConnectionClosed):  # counted as lost
                await sockets[label].send(frame)

    async def heartbeats() -> None:
        """Until cancelled (at "stop"): each socket's pings, spread over the interval."""
        rng = random.Random(len(sockets))
        due = {label: time.monotonic() + rng.uniform(0, ping_every) for label in sockets}
        while True:
            await asyncio.sleep(0.1)
            now = time.monotonic()
            for label, at in due.items():
                if at <= now and label not in closed:
                    due[label] = at + ping_every
                    with contextlib.suppress(websockets.ConnectionClosed):
                        await sockets[label].send('{"type": "presence.ping"}')

    took = await gw.open_sockets(ws_url, users, opened)
    gc.collect()  # the sockets' objects frozen: a full collection would stamp arrivals late
    gc.freeze()
    conn.send(("opened", len(sockets), took))
    loop = asyncio.get_running_loop()
    tasks: list[Any] = [loop.create_task(heartbeats())] if ping_every > 0 else []
    while True:  # bounded by the parent's commands, which end with "stop"
        command = await loop.run_in_executor(None, conn.recv)
        if command[0] == "run":
            tasks.append(loop.create_task(send_on_schedule(*command[1:])))
            conn.send(("started",))
        elif command[0] == "count":
            conn.send(("count", delivered, len(sockets) - len(closed)))
        elif command[0] == "take":
            taken, arrivals[:] = list(arrivals), []
            done, sent[:] = list(sent), []
            conn.send(("taken", taken, done))
        elif command[0] == "stop":
            for task in tasks:
                task.cancel()
            await asyncio.gather(*(ws.close() for ws in sockets.values()), return_exceptions=True)
            conn.send(("stopped", len(closed)))
            return


def run_clients(
    ws_url: str,
    users: list[tuple[int, str]],
    conversation_ids: list[str],
    conn: Any,
    ping_every: float,
) -> None:
    asyncio.run(_clients(ws_url, users, conversation_ids, conn, ping_every))


# --- Seeding ---------------------------------------------------------------------------------


def seed(n: int) -> tuple[list[Any], list[Any], list[str]]:
    """``n`` patients and ``n`` doctors, pair ``k`` in care together (a confirmed video
    appointment that ended yesterday) with one open conversation."""
    import booking as bk
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    from accounts.models import Role
    from bookings.models import Appointment, Status
    from chat.services import conversation_open

    password_hash = make_password("Bench-chat-2026-pw")
    patients = bk.make_users(n, Role.PATIENT, "chatpatient", password_hash)
    doctors = bk.make_users(n, Role.DOCTOR, "chatdoctor", password_hash)
    profiles = [bk.make_doctor(u) for u in doctors]
    start = timezone.now() - dt.timedelta(days=1)
    Appointment.objects.bulk_create(
        [
            Appointment(
                doctor=profile,
                patient=patient,
                start=start,
                end=start + dt.timedelta(minutes=30),
                mode="video",
                status=Status.CONFIRMED,
            )
            for profile, patient in zip(profiles, patients, strict=True)
        ],
        batch_size=500,
    )
    ids = [
        str(conversation_open(user=p, other_id=d.pk)[0].pk)
        for p, d in zip(patients, doctors, strict=True)
    ]
    return patients, doctors, ids


# --- Measuring a phase -----------------------------------------------------------------------


@dataclass
class Integrity:
    """What every socket has seen so far, across the phases."""

    conversations: int
    seen: set[tuple[int, str, int]] = field(default_factory=set)
    last: dict[tuple[int, str], int] = field(default_factory=dict)
    duplicated: int = 0
    out_of_order: int = 0
    misrouted: int = 0

    def gaps(self) -> int:
        seqs: dict[tuple[int, str], set[int]] = {}
        for label, cid, seq in self.seen:
            seqs.setdefault((label, cid), set()).add(seq)
        return sum(max(s) - len(s) for s in seqs.values())


@dataclass
class Phase:
    name: str
    rate: float
    count: int
    latency: list[float] = field(default_factory=list)  # the other participant's socket
    echo: list[float] = field(default_factory=list)  # the sender's own socket
    ack: list[float] = field(default_factory=list)
    send_lag: list[float] = field(default_factory=list)
    # (due time, delivery latency in ms) and the server's (time, CPU seconds) samples: which
    # seconds of the phase were late, and how busy the server was in each.
    timeline: list[tuple[float, float]] = field(default_factory=list)
    cpu: list[tuple[float, float]] = field(default_factory=list)
    # The server's pauses in the phase (bench/gcprobe): full collections (wall time, ms) and
    # times its probe thread woke 30 ms or more late (ms).
    collections: list[tuple[float, float]] = field(default_factory=list)
    stalls: list[float] = field(default_factory=list)
    # Deliveries missing at the end ("other side", "echo") and acknowledgements ("ack").
    missing: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    other_events: Counter[str] = field(default_factory=Counter)
    # Cores: the server's and the clients' CPU, the machine busy before and during the phase.
    cores: dict[str, float] = field(default_factory=dict)


def analyse(
    phase: Phase,
    first: int,
    t0: float,
    arrivals: list[tuple[int, float, str]],
    sent: list[tuple[int, float]],
    ids: list[str],
    state: Integrity,
) -> None:
    """Arrivals are in arrival order per socket (one socket lives in one client process)."""
    n = state.conversations
    index = {cid: k for k, cid in enumerate(ids)}
    due = {i: t0 + (i - first) / phase.rate for i in range(first, first + phase.count)}
    got: dict[tuple[int, int], float] = {}
    acked: dict[int, float] = {}
    for label, at, frame in arrivals:
        event = json.loads(frame)
        kind = event.get("type")
        data = event.get("data") or {}
        if kind == "chat.message":
            cid, seq = data["conversation_id"], data["seq"]
            c = index.get(cid)
            if c is None or label not in (c, c + n):
                state.misrouted += 1
                continue
            key = (label, cid, seq)
            if key in state.seen:
                state.duplicated += 1
                continue
            state.seen.add(key)
            if seq < state.last.get((label, cid), 0):
                state.out_of_order += 1
            state.last[(label, cid)] = max(seq, state.last.get((label, cid), 0))
            got[(label, int(data["text"].rsplit(" ", 1)[1]))] = at
        elif kind == "chat.ack":
            acked[int(data["text"].rsplit(" ", 1)[1])] = at
        elif kind == "error":
            phase.errors[str(event.get("code") or event.get("error") or frame[:80])] += 1
        else:
            phase.other_events[str(kind)] += 1
    for i, at in sent:
        phase.send_lag.append((at - due[i]) * 1000)
    for i in range(first, first + phase.count):
        c, side = route(i, n)
        sender, recipient = c + side * n, c + (1 - side) * n
        for label, bucket in ((recipient, phase.latency), (sender, phase.echo)):
            when = got.get((label, i))
            if when is None:
                phase.missing["other side" if label == recipient else "echo"] += 1
            else:
                bucket.append((when - due[i]) * 1000)
                if label == recipient:
                    phase.timeline.append((due[i], (when - due[i]) * 1000))
        if i in acked:
            phase.ack.append((acked[i] - due[i]) * 1000)
        else:
            phase.missing["ack"] += 1


def ask(clients: list[Any], command: tuple[Any, ...]) -> list[Any]:
    for conn in clients:
        conn.send(command)
    return [conn.recv() for conn in clients]


def run_phase(
    phase: Phase,
    first: int,
    clients: list[Any],
    client_pids: list[int],
    server_pid: int,
    ids: list[str],
    state: Integrity,
    args: argparse.Namespace,
) -> None:
    import gateway as gw
    import http_baseline as hb

    phase.cores["before"] = asyncio.run(hb.wait_until_quiet(args.quiet_wait, 0.6))
    log(
        f"{phase.name}: {phase.count} messages at {phase.rate:g}/s "
        f"(machine busy {phase.cores['before']:.2f} cores before)"
    )
    before = [sum(r[1] for r in ask(clients, ("count",)))]
    cpu0, busy0 = gw.cpu_seconds(server_pid), hb._busy_seconds()
    ccpu0 = sum(gw.cpu_seconds(p) for p in client_pids)
    wall0 = time.monotonic()
    t0 = time.time() + 0.5
    end = t0 + phase.count / phase.rate
    with gw.cpu_sampler(server_pid) as phase.cpu:
        ask(clients, ("run", first, phase.count, t0, phase.rate))
        time.sleep(max(0.0, end - time.time()))
    expected = before[0] + 2 * phase.count
    took = time.monotonic() - wall0
    phase.cores["server"] = (gw.cpu_seconds(server_pid) - cpu0) / took
    phase.cores["clients"] = (sum(gw.cpu_seconds(p) for p in client_pids) - ccpu0) / took
    phase.cores["during"] = (hb._busy_seconds() - busy0) / took
    # Drain: until every delivery arrived, nothing came for ``--idle`` s, or ``--drain`` s.
    drain0 = time.monotonic()
    last_count, last_change = -1, drain0
    while time.monotonic() - drain0 < args.drain:  # bounded by --drain
        count = sum(r[1] for r in ask(clients, ("count",)))
        if count >= expected:
            break
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > args.idle:
            break
        time.sleep(0.25)
    time.sleep(0.5)  # anything duplicated right behind the last delivery
    phase.collections = gw.server_collections(args.gc_log, t0, time.time())
    phase.stalls = gw.server_stalls(args.stall_log, t0, time.time())
    arrivals: list[tuple[int, float, str]] = []
    sent: list[tuple[int, float]] = []
    for _, a, s in ask(clients, ("take",)):
        arrivals += a
        sent += s
    analyse(phase, first, t0, arrivals, sent, ids, state)
    log(
        f"  p50 {gw.pct(phase.latency, 50):.1f} ms, p99 {gw.pct(phase.latency, 99):.1f} ms, "
        f"missing {dict(phase.missing)}, errors {dict(phase.errors)}, "
        f"server CPU {phase.cores['server'] * 100:.0f}%, machine {phase.cores['during']:.2f} cores"
        f"; {pauses(phase)}"
    )


def pauses(phase: Phase) -> str:
    """The phase's late seconds, full collections and stalls, in words."""
    import gateway as gw

    gcs = ", ".join(f"{ms:.0f} ms at +{at - phase.cpu[0][0]:.1f} s" for at, ms in phase.collections)
    return (
        f"{gw.late_seconds(phase.timeline, phase.cpu)}; full collections of 10 ms or more: "
        f"{gcs or 'none'}; {gw.stalls_text(phase.stalls)}"
    )


# --- Report ----------------------------------------------------------------------------------


def phase_row(p: Phase) -> str:
    import gateway as gw

    errors = ", ".join(f"{k}: {v}" for k, v in sorted(p.errors.items())) or "none"
    return (
        f"| {p.name} | {p.rate:g}/s | {p.count} | {gw.summary(p.latency)} | "
        f"{gw.pct(p.echo, 99):.1f} | {gw.pct(p.ack, 99):.1f} | {gw.pct(p.send_lag, 99):.1f} | "
        f"{p.missing['other side']} | {p.missing['echo']} | {p.missing['ack']} | {errors} | "
        f"{p.cores['server'] * 100:.0f}% | {p.cores['clients'] * 100:.0f}% | "
        f"{p.cores['before']:.2f} / {p.cores['during']:.2f} |"
    )


def report(
    command: str,
    args: argparse.Namespace,
    phases: list[Phase],
    state: Integrity,
    opened: int,
    open_s: float,
    rss: tuple[int, int, int],
    open_at_end: int,
    load: tuple[float, float],
) -> str:
    steps = [p for p in phases if p.name.startswith("step")]
    knee = steps[-1] if steps and _p99(steps[-1]) > args.target_ms else None
    below = [p for p in steps if _p99(p) <= args.target_ms]
    knee_text = (
        f"**{knee.rate:g} messages/s** (p99 {_p99(knee):.1f} ms); the highest step at or under "
        f"{args.target_ms:g} ms was " + (f"{max(p.rate for p in below):g}/s" if below else "none")
        if knee
        else f"not reached: p99 stayed at or under {args.target_ms:g} ms up to "
        f"{max((p.rate for p in steps), default=0):g}/s"
    )
    lost = sum(p.missing["other side"] + p.missing["echo"] for p in phases)
    total = sum(2 * p.count for p in phases)
    other = Counter[str]()
    for p in phases:
        other.update(p.other_events)
    import gateway as gw

    return "\n".join(
        [
            *gw.run_header(command),
            f"{os.cpu_count()} cores; load average {load[0]:.2f} at the start and "
            f"{load[1]:.2f} at the end (1 minute); the cores were shared by the "
            f"{args.clients} client processes, this process, Uvicorn, PostgreSQL and Redis "
            f"(and by whatever else ran on the machine: the last column gives the cores busy before / during each phase), Python "
            f"{platform.python_version()}, one Uvicorn process, `CHAT_SEND_RATE_LIMIT="
            f"{args.send_limit}`; each socket sent `presence.ping` every {args.ping:g} s "
            "(0: never).",
            "",
            f"{opened} sockets ({args.conversations} patients, {args.conversations} doctors) "
            f"opened in {open_s:.1f} s; server RSS {rss[0] / 1024:.0f} MiB before the "
            f"sockets, {rss[1] / 1024:.0f} MiB with them, {rss[2] / 1024:.0f} MiB at the end; "
            f"{open_at_end} of {opened} still open at the end.",
            "",
            "Latency in ms from each message's due time (open loop). *Delivery* = its "
            "`chat.message` on the other participant's socket; *echo* = on the sender's own "
            "socket; *ack* = the sender's `chat.ack`; *send lag* = how late the client "
            "process itself sent it. Lost = deliveries missing at the end of the drain.",
            "",
            "| phase | rate | messages | delivery p50 | p95 | p99 | max | echo p99 | ack p99 "
            "| send lag p99 | lost (other side) | lost (echo) | not acked | errors | server CPU "
            "(one core = 100%) | client CPU | machine busy (cores) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|",
            *(phase_row(p) for p in phases),
            "",
            "Pauses: the late seconds (by due time from the phase's start), with the server's CPU "
            "in each; the server's full collections and stalls (`bench/gcprobe`):",
            "",
            *(f"- {p.name} ({p.rate:g}/s): {pauses(p)}" for p in phases),
            "",
            f"Integrity over all phases, counted on every participant's socket ({total} "
            f"deliveries expected): lost **{lost}**, duplicated **{state.duplicated}**, "
            f"out of order **{state.out_of_order}**, misrouted **{state.misrouted}**, "
            f"gaps in the `seq` numbers seen **{state.gaps()}**.",
            "",
            f"Knee (the first step rate whose delivery p99 exceeded {args.target_ms:g} ms on "
            f"two runs in a row; a step that misses once is run again): {knee_text}.",
            "",
            "Other events received: "
            + (", ".join(f"`{k}` {v}" for k, v in sorted(other.items())) or "none")
            + ".",
            "",
        ]
    )


def _p99(p: Phase) -> float:
    import gateway as gw

    return gw.pct(p.latency, 99) if p.latency and not p.missing["other side"] else float("inf")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--conversations", type=int, default=500, help="pairs (2 sockets each)")
    p.add_argument("--clients", type=int, default=2, help="client processes holding sockets")
    p.add_argument("--rate", type=float, default=200.0, help="messages/s of the main run")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of the main run")
    p.add_argument("--warmup-rate", type=float, default=50.0)
    p.add_argument("--steps", default="20,30,40,50,60,70,80,90,100,150,200", help="knee search")
    p.add_argument("--step-duration", type=float, default=10.0)
    p.add_argument("--target-ms", type=float, default=100.0, help="p99 target of delivery")
    p.add_argument("--drain", type=float, default=120.0, help="max seconds to wait for late ones")
    p.add_argument("--idle", type=float, default=3.0, help="end a drain after s without news")
    p.add_argument("--quiet-wait", type=float, default=20.0, help="wait for a quiet machine")
    p.add_argument(
        "--ping",
        type=float,
        default=30.0,
        help="presence.ping every s on each socket, as apps keep their users online (0: none)",
    )
    p.add_argument("--send-limit", default="100000/10s/user", help="CHAT_SEND_RATE_LIMIT")
    sys.path.insert(0, str(ROOT))
    import gateway as gw

    gw.common_options(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    load_start = os.getloadavg()[0]
    args = parse_args(argv)
    command = shlex.join([".venv/bin/python", "bench/chat_delivery.py", *sys.argv[1:]])
    import booking as bk  # bench/booking.py: database, seeding and token minting
    import gateway as gw

    bk.DB_NAME, bk.DATABASE_URL, bk.PREFIX = DB_NAME, DATABASE_URL, PREFIX
    n = args.conversations
    steps = sorted(float(r) for r in args.steps.split(",") if r.strip())
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="telemed-chat-")))
        env = gw.prepare(
            stack,
            args.redis_url,
            workdir,
            JWT_ACCESS_TOKEN_TTL="7200",  # access tokens outlive the run
            CHAT_SEND_RATE_LIMIT=args.send_limit,
        )
        log(f"seeding {n} conversations")
        patients, doctors, ids = seed(n)
        log(f"minting {2 * n} sessions")
        tokens = bk.mint_tokens([*patients, *doctors])
        from django.db import connection, connections

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        connections.close_all()

        # The server reports its long collections and stalls (bench/gcprobe/sitecustomize.py).
        args.gc_log, args.stall_log = workdir / "server-gc.log", workdir / "server-stalls.log"
        probe = os.pathsep.join(filter(None, [str(ROOT / "bench/gcprobe"), env.get("PYTHONPATH")]))
        env = {
            **env,
            "PYTHONPATH": probe,
            "BENCH_GC_LOG": str(args.gc_log),
            "BENCH_STALL_LOG": str(args.stall_log),
        }
        server, rss_before = gw.start_server(stack, env, workdir)
        pid = server.popen.pid

        ws_url = server.base.replace("http://", "ws://") + "/ws/v1/"
        labelled = list(enumerate(tokens))
        share = -(-len(labelled) // args.clients)
        clients: list[Any] = []
        procs: list[Any] = []
        for k in range(args.clients):
            parent, child = mp.get_context("spawn").Pipe()
            proc = mp.get_context("spawn").Process(
                target=run_clients,
                args=(ws_url, labelled[k * share : (k + 1) * share], ids, child, args.ping),
                daemon=True,
            )
            proc.start()
            child.close()  # so that a client's death ends recv() here with EOFError
            stack.callback(proc.join, 30)
            clients.append(parent)
            procs.append(proc)
        opened_replies = [conn.recv() for conn in clients]
        opened = sum(r[1] for r in opened_replies)
        open_s = max(r[2] for r in opened_replies)
        log(f"{opened} sockets open in {open_s:.1f} s")
        time.sleep(3)
        rss_open = gw.rss_kib(pid)
        ask(clients, ("take",))  # presence events of the opening
        client_pids = [p.pid for p in procs]

        state = Integrity(conversations=n)
        phases: list[Phase] = []
        first = 0
        plan = [
            ("warm-up", args.warmup_rate, n),
            ("main", args.rate, int(args.rate * args.duration)),
        ]
        plan += [(f"step {k + 1}", r, int(r * args.step_duration)) for k, r in enumerate(steps)]
        for name, rate, count in plan:  # bounded by the plan
            for attempt in range(2 if name.startswith("step") else 1):
                phase = Phase(name=name + (" again" if attempt else ""), rate=rate, count=count)
                run_phase(phase, first, clients, client_pids, pid, ids, state, args)
                phases.append(phase)
                first += count
                if _p99(phase) <= args.target_ms:
                    break
            if name.startswith("step") and _p99(phase) > args.target_ms:
                break  # the knee: this rate missed the target twice
        rss_end = gw.rss_kib(pid)
        open_at_end = sum(r[2] for r in ask(clients, ("count",)))
        ask(clients, ("stop",))
        for proc in procs:
            proc.join(30)
        text = report(
            command,
            args,
            phases,
            state,
            opened,
            open_s,
            (rss_before, rss_open, rss_end),
            open_at_end,
            (load_start, os.getloadavg()[0]),
        )
    return gw.emit(text, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
