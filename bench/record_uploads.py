"""Medical record uploads: throughput including the virus scan, and the server's memory while
large files arrive, under Daphne, under Uvicorn, and on the direct (presigned POST) path.

    .venv/bin/python bench/record_uploads.py            # ~2-4 minutes
    .venv/bin/python bench/record_uploads.py --help     # every option

Needs PostgreSQL (127.0.0.1:5432, user postgres), Redis (127.0.0.1:6379) and ``clamd``
installed (``apt-get install clamav-daemon``). Creates its own database
``telemed_bench_records`` (dropped first if there, dropped at the end), starts its own clamd
(a one-line EICAR signature database, as the test suite does) and its own S3 endpoint (moto
server) on loopback, and deletes only its own Redis keys.

1. **1 MB uploads including the scan**: one Uvicorn process and one task worker
   (``manage.py db_worker --queue-name '*' --interval 0.1 --no-startup-delay``), local-disk
   storage, clamd on a Unix socket; one upload scanned first as a warm-up. ``--clients`` clients post
   ``--files`` files of 1 MB (random bytes behind a PDF header) to ``POST /api/v1/records``;
   a file is done when its record is ``clean`` (polled in the database by this process, not
   through the API). Files/s over the whole run; p50/p95 of the POST alone and of upload to
   clean.
2. **Peak memory while 10 clients upload 20 MB at once** through ``POST /api/v1/records``:
   the server process's RSS sampled every 10 ms and its ``VmHWM`` (kernel peak), under Daphne
   and under Uvicorn, each a fresh process, warmed up with one small upload first.
3. **The direct path**: the same 10 clients x 20 MB, each asking the API for a presigned
   POST, posting the file to the S3 endpoint, then finalising through the API: the server
   process's peak RSS (Uvicorn, storage on the moto S3 endpoint).

Progress goes to stderr; a markdown section for bench/RESULTS.md to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import http_baseline as hb  # bench/http_baseline.py: server start/stop, migrate, free ports
import httpx
from booking import log, pct  # bench/booking.py
from booking import mint_tokens as mint_session_tokens

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "telemed_bench_records"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
PREFIX = f"telemed-bench-records-{uuid.uuid4().hex[:8]}"
RECORDS = "/api/v1/records"
MB = 1_000_000


def _dropdb() -> None:
    subprocess.run(
        ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", DB_NAME],
        check=True,
        timeout=120,
    )


def pdf_bytes(size: int) -> bytes:
    return b"%PDF-1.4\n" + os.urandom(size - 9)


def mint_tokens(n: int) -> list[str]:
    """Patients and an access token each, made in this process the way the login endpoint
    makes them (see bench/booking.py) - allauth limits logins to 30 a minute per IP."""
    from tests.factories import make_user

    return mint_session_tokens([make_user() for _ in range(n)])


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in KiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


class RssSampler:
    """Samples a process's RSS every 10 ms in a thread, keeping the highest."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, KeyError):
                self.peak = max(self.peak, rss_kib(self.pid)[0])
            time.sleep(0.01)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def upload(client: httpx.Client, base: str, token: str, path: Path, title: str) -> httpx.Response:
    with path.open("rb") as fh:  # httpx streams an open file into the multipart body
        return client.post(
            base + RECORDS,
            headers={"Authorization": f"Bearer {token}"},
            data={"category": "lab_result", "title": title},
            files={"file": (path.name, fh, "application/pdf")},
            timeout=300,
        )


def statuses(ids: Sequence[str]) -> dict[str, str]:
    from records.models import MedicalRecord

    found = MedicalRecord.objects.filter(pk__in=ids).values_list("pk", "status")
    return {str(k): v for k, v in found}


def warm_up(base: str, token: str, workdir: Path) -> None:
    """One upload scanned clean before the clock starts: server, worker and clamd warm."""
    path = workdir / "warm.pdf"
    path.write_bytes(pdf_bytes(MB))
    with httpx.Client() as client:
        record_id = upload(client, base, token, path, "warm").json()["id"]
    deadline = time.monotonic() + 60
    while statuses([record_id]).get(record_id) != "clean":  # bounded: one minute
        if time.monotonic() > deadline:
            raise RuntimeError("the warm-up upload was not scanned clean within a minute")
        time.sleep(0.05)


def throughput(base: str, tokens: list[str], workdir: Path, files: int, clients: int) -> dict:
    """Part 1: ``files`` uploads of 1 MB by ``clients`` clients, each done when clean."""
    paths = []
    for i in range(files):
        p = workdir / f"one-mb-{i}.pdf"
        p.write_bytes(pdf_bytes(MB))
        paths.append(p)
    posted: dict[str, float] = {}
    post_ms: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    t0 = time.perf_counter()

    def one(i: int) -> None:
        with httpx.Client() as client:
            started = time.perf_counter()
            r = upload(client, base, tokens[i % len(tokens)], paths[i], f"t{i}")
            elapsed = time.perf_counter()
            with lock:
                if r.status_code != 201:
                    errors.append(f"{r.status_code} {r.text[:200]}")
                    return
                post_ms.append((elapsed - started) * 1000)
                posted[r.json()["id"]] = started

    done: dict[str, float] = {}
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(one, i) for i in range(files)]
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # bounded: three minutes at most
            with lock:
                waiting = [i for i in posted if i not in done]
            for record_id, status in statuses(waiting).items():
                if status != "pending":
                    done[record_id] = time.perf_counter()
                    if status != "clean":
                        errors.append(f"{record_id} ended {status}")
            if all(f.done() for f in futures) and len(done) == len(posted):
                break
            time.sleep(0.02)
    wall = max(done.values(), default=t0) - t0
    to_clean = [(done[i] - posted[i]) * 1000 for i in done]
    return {
        "files": files,
        "clients": clients,
        "clean": len(done),
        "errors": errors,
        "wall_s": wall,
        "files_per_s": len(done) / wall if wall else float("nan"),
        "post_p50": pct(post_ms, 50),
        "post_p95": pct(post_ms, 95),
        "clean_p50": pct(to_clean, 50),
        "clean_p95": pct(to_clean, 95),
    }


def concurrent_memory(
    pid: int, clients: int, action: Callable[[int], int], warm: Callable[[], int]
) -> dict:
    """Parts 2 and 3: ``clients`` actions at once; the server's RSS before and at peak."""
    assert warm() in (200, 201), "warm-up request failed"
    time.sleep(0.5)
    before, _ = rss_kib(pid)
    barrier = threading.Barrier(clients)

    def run(i: int) -> int:
        barrier.wait(30)
        return action(i)

    t0 = time.perf_counter()
    with RssSampler(pid) as sampler, ThreadPoolExecutor(clients) as pool:
        codes = list(pool.map(run, range(clients)))
    wall = time.perf_counter() - t0
    after, hwm = rss_kib(pid)
    return {
        "codes": codes,
        "wall_s": wall,
        "before_mib": before / 1024,
        "peak_mib": max(sampler.peak, after) / 1024,
        "hwm_mib": hwm / 1024,
    }


def api_uploads(
    kind: str, env: dict[str, str], workdir: Path, tokens: list[str], size: int
) -> dict:
    big = workdir / "twenty.pdf"
    if not big.exists():
        big.write_bytes(pdf_bytes(size))
    small = workdir / "small.pdf"
    small.write_bytes(pdf_bytes(10_000))
    server = hb.Server(kind, env, workdir / f"{kind}.log", ROOT)
    try:
        server.wait_healthy()
        log(f"  {kind} on {server.base} (pid {server.popen.pid})")

        def action(i: int) -> int:
            with httpx.Client() as client:
                return upload(client, server.base, tokens[i], big, f"big{i}").status_code

        def warm() -> int:
            with httpx.Client() as client:
                return upload(client, server.base, tokens[0], small, "warm").status_code

        return concurrent_memory(server.popen.pid, len(tokens), action, warm)
    finally:
        server.stop()


def direct_uploads(env: dict[str, str], workdir: Path, tokens: list[str], size: int) -> dict:
    big = workdir / "twenty.pdf"
    server = hb.Server("uvicorn", env, workdir / "uvicorn-s3.log", ROOT)
    try:
        server.wait_healthy()
        log(f"  uvicorn (S3 storage) on {server.base} (pid {server.popen.pid})")

        def direct(client: httpx.Client, token: str, path: Path) -> int:
            headers = {"Authorization": f"Bearer {token}"}
            body = {"category": "imaging", "title": "MRI", "file_name": path.name}
            started = client.post(server.base + RECORDS + "/uploads", json=body, headers=headers)
            if started.status_code != 201:
                return started.status_code
            form = started.json()["upload"]
            with path.open("rb") as fh:
                sent = client.post(
                    form["url"], data=form["fields"], files={"file": ("f", fh)}, timeout=300
                )
            if sent.status_code >= 300:
                return sent.status_code
            record_id = started.json()["record"]["id"]
            done = client.post(f"{server.base}{RECORDS}/{record_id}/complete", headers=headers)
            return done.status_code

        def action(i: int) -> int:
            with httpx.Client() as client:
                return direct(client, tokens[i], big)

        def warm() -> int:
            with httpx.Client() as client:
                return direct(client, tokens[0], workdir / "small.pdf")

        return concurrent_memory(server.popen.pid, len(tokens), action, warm)
    finally:
        server.stop()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100, help="1 MB files in part 1")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients in part 1")
    parser.add_argument("--big-clients", type=int, default=10, help="clients in parts 2 and 3")
    parser.add_argument("--big-size", type=int, default=20 * MB, help="bytes per big file")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--keep-logs", type=Path, help="copy the server and worker logs here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([".venv/bin/python", "bench/record_uploads.py", *sys.argv[1:]])
    sys.path.insert(0, str(ROOT))
    from tests import procs

    started = dt.datetime.now(dt.UTC)
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="telemed-rec-")))
        if args.keep_logs:
            stack.callback(keep_logs, workdir, args.keep_logs)
        clamd = stack.enter_context(procs.running(procs.start_clamd(workdir / "clamd")))
        (workdir / "moto").mkdir()
        moto = stack.enter_context(procs.running(procs.start_moto(workdir / "moto")))
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "telemed.settings",
            "DJANGO_ENV": "development",
            "DEBUG": "false",
            "DATABASE_URL": DATABASE_URL,
            "REDIS_URL": args.redis_url,
            "REDIS_KEY_PREFIX": PREFIX,
            "TASK_WORKER_IN_PROCESS": "false",
            "LOG_LEVEL": "WARNING",
            "VAR_DIR": str(workdir / "var"),
            "CLAMD_SOCKET": clamd.info["socket"],
            "JWT_ACCESS_TOKEN_TTL": "3600",
        }
        os.environ.update(env)
        import django

        django.setup()
        from tests.conftest import delete_own_redis_keys

        log(f"creating database {DB_NAME}")
        _dropdb()
        subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", DB_NAME], check=True)
        stack.callback(_dropdb)
        stack.callback(delete_own_redis_keys)  # this run's prefix only
        hb.migrate(env, ROOT)
        tokens = mint_tokens(max(args.clients, args.big_clients))

        log(f"part 1: {args.files} x 1 MB, {args.clients} clients, uvicorn + one worker")
        worker = subprocess.Popen(  # noqa: S603
            [
                *(sys.executable, "manage.py", "db_worker", "--queue-name", "*"),
                *("--interval", "0.1", "--no-startup-delay"),
            ],
            cwd=ROOT,
            env=env,
            stdout=(workdir / "worker.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        stack.callback(worker.kill)
        server = hb.Server("uvicorn", env, workdir / "uvicorn-1.log", ROOT)
        try:
            server.wait_healthy()
            warm_up(server.base, tokens[0], workdir)
            part1 = throughput(server.base, tokens, workdir, args.files, args.clients)
        finally:
            server.stop()
            worker.terminate()
            worker.wait(15)
        log(f"  {part1}")

        part2 = {}
        big_tokens = tokens[: args.big_clients]
        for kind in ("daphne", "uvicorn"):
            log(f"part 2: {args.big_clients} x {args.big_size / MB:.0f} MB through {kind}")
            part2[kind] = api_uploads(kind, env, workdir, big_tokens, args.big_size)
            log(f"  {part2[kind]}")

        log("part 3: the direct path (S3 endpoint)")
        import boto3

        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        boto3.client(
            "s3",
            endpoint_url=moto.info["endpoint"],
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106
        ).create_bucket(Bucket=bucket)
        s3_env = {
            **env,
            "STORAGE_BACKEND": "s3",
            "STORAGE_S3_BUCKET": bucket,
            "STORAGE_S3_ENDPOINT_URL": moto.info["endpoint"],
            "STORAGE_S3_ACCESS_KEY_ID": "bench",
            "STORAGE_S3_SECRET_ACCESS_KEY": "bench",
        }
        part3 = direct_uploads(s3_env, workdir, big_tokens, args.big_size)
        log(f"  {part3}")

    print(report(command, started, args, part1, part2, part3))
    return 0


def keep_logs(workdir: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for found in workdir.glob("*.log"):
        shutil.copy(found, target / found.name)


def _codes(codes: Sequence[int]) -> str:
    return ", ".join(f"{c} x{codes.count(c)}" for c in sorted(set(codes)))


def report(
    command: str, started: dt.datetime, args: argparse.Namespace, p1: dict, p2: dict, p3: dict
) -> str:
    mb = args.big_size / MB
    lines = [
        "## Medical records: uploads with the virus scan, and memory under large uploads",
        "",
        f"Run {started:%Y-%m-%d %H:%M} UTC on this 2-core machine, shared with other work "
        "(other engineers' test runs): figures are indicative, not a quiet-machine measurement.",
        "",
        f"    {command}",
        "",
        "### 1. 1 MB uploads including the scan (one Uvicorn process, one worker, local disk)",
        "",
        f"{p1['clean']}/{p1['files']} files clean with {p1['clients']} clients in "
        f"{p1['wall_s']:.1f} s: **{p1['files_per_s']:.1f} files/s**.",
        "",
        "| | p50 ms | p95 ms |",
        "| --- | ---: | ---: |",
        f"| `POST /api/v1/records` (1 MB) | {p1['post_p50']:.0f} | {p1['post_p95']:.0f} |",
        f"| upload start to `clean` | {p1['clean_p50']:.0f} | {p1['clean_p95']:.0f} |",
        "",
        f"Errors: {p1['errors'] or 'none'}.",
        "",
        f"### 2-3. Server RSS while {args.big_clients} clients send {mb:.0f} MB each at once",
        "",
        "| server, path | answers | wall s | RSS before MiB | peak RSS MiB (sampled) "
        "| VmHWM MiB | peak - before MiB |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    rows = [
        (f"Daphne, `POST {RECORDS}`", p2["daphne"]),
        (f"Uvicorn, `POST {RECORDS}`", p2["uvicorn"]),
    ]
    rows.append(("Uvicorn, direct (presigned POST to S3)", p3))
    for name, r in rows:
        lines.append(
            f"| {name} | {_codes(r['codes'])} | {r['wall_s']:.1f} | {r['before_mib']:.0f} | "
            f"{r['peak_mib']:.0f} | {r['hwm_mib']:.0f} | {r['peak_mib'] - r['before_mib']:.0f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
