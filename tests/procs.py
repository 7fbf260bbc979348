"""Real external processes for the suite: clamd, an S3 endpoint (moto), a private Redis,
and our own server (Daphne or Uvicorn) on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Proc:
    popen: subprocess.Popen
    log: Path
    info: dict = field(default_factory=dict)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _spawn(args: list[str], log: Path, env: dict | None = None, cwd: Path = ROOT) -> Proc:
    fh = open(log, "wb")  # noqa: SIM115 - closed with the process
    popen = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=cwd)  # noqa: S603
    return Proc(popen=popen, log=log)


def start_clamd(workdir: Path) -> Proc:
    clamd_bin = shutil.which("clamd") or "/usr/sbin/clamd"
    db = workdir / "db"
    db.mkdir(parents=True, exist_ok=True)
    (db / "eicar.ndb").write_text(f"Eicar-Test-Signature:0:0:{EICAR.hex()}\n")
    sock = workdir / "clamd.sock"
    conf = workdir / "clamd.conf"
    conf.write_text(
        f"LocalSocket {sock}\nDatabaseDirectory {db}\nForeground yes\n"
        f"LogFile {workdir / 'clamd.log'}\nTemporaryDirectory {workdir}\nStreamMaxLength 64M\n"
    )
    proc = _spawn([clamd_bin, "-c", str(conf)], workdir / "clamd.out")
    wait_until(sock.exists, what="clamd socket")
    proc.info["socket"] = str(sock)
    return proc


def start_moto(workdir: Path) -> Proc:
    port = free_port()
    proc = _spawn(
        [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], workdir / "moto.log"
    )
    wait_until(lambda: port_open(port), what="moto server")
    proc.info["endpoint"] = f"http://127.0.0.1:{port}"
    return proc


def start_redis(workdir: Path) -> Proc:
    port = free_port()
    proc = _spawn(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        workdir / f"redis-{port}.log",
    )
    wait_until(lambda: port_open(port), what="redis")
    proc.info["url"] = f"redis://127.0.0.1:{port}/0"
    return proc


def start_server(workdir: Path, env: dict[str, str], kind: str = "daphne") -> Proc:
    """Our ASGI app in its own process, exactly as production runs it."""
    port = free_port()
    full_env = {**os.environ, **env}
    if kind == "daphne":
        args = [
            str(VENV_BIN / "daphne"),
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "--access-log",
            os.devnull,
            "telemed.asgi:application",
        ]
    else:
        args = [
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
    proc = _spawn(args, workdir / f"{kind}-{port}.log", env=full_env)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"server exited:\n{proc.output()}")
        return httpx.get(base + "/healthz", timeout=1).status_code == 200

    wait_until(up, timeout=30, what=f"{kind} server")
    proc.info.update(base=base, port=port, ws=f"ws://127.0.0.1:{port}")
    return proc


@contextlib.contextmanager
def running(proc: Proc) -> Iterator[Proc]:
    try:
        yield proc
    finally:
        proc.stop()


def run_on_sqlite(script: str, var_dir: Path, timeout: float = 240) -> str:
    """Run ``script`` in a Python process of its own on the embedded defaults (``make run``'s:
    SQLite in ``var_dir``, no Redis), after ``django.setup()`` and ``migrate``; its output.
    The script is checked to run on SQLite and must print ``sqlite ok`` at the end."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "VAR_DIR", "DJANGO_ENV")
    }
    env.update(
        DJANGO_SETTINGS_MODULE="telemed.settings",
        VAR_DIR=str(var_dir),
        TASK_WORKER_IN_PROCESS="false",
    )
    prelude = (
        "import django\ndjango.setup()\n"
        "from django.core.management import call_command\ncall_command('migrate', verbosity=0)\n"
        "from django.db import connection as _connection\n"
        "assert _connection.vendor == 'sqlite'\n"
    )
    r = subprocess.run(  # noqa: S603
        [sys.executable, "-c", prelude + script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "sqlite ok" in r.stdout, r.stdout
    return r.stdout
