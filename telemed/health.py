"""Liveness (``/healthz``) and readiness (``/readyz``) probes.

``/readyz`` checks every dependency and names what is down. It answers 503 only when this
process cannot serve at all (the database): the others (Redis, storage, clamd) are shared by
every replica, so failing readiness on them would take every replica out of the load
balancer at once, while most of the API still works without them (sessions fall back to the
database, scans wait). Then it answers 200 ``"degraded"``. Each probe waits about a second
at most: a hung service must not hold the request threads. Nor may many calls at once (the
endpoint needs no credential): one round of probes runs at a time per process, and its
result answers the calls of the next ``HEALTH_READY_REUSE_SECONDS`` and those that come
while the next round runs.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.files.storage import storages
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from records.scanner import clamd_client


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def _cache() -> str:
    key = f"readyz:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=5)
    if cache.get(key) != "1":
        raise RuntimeError("cache did not return what was stored")
    cache.delete(key)
    return "redis" if settings.REDIS_URL else "local-memory"


@lru_cache(maxsize=2)
def _redis_client(url: str) -> Any:
    """One pooled client per process: probes run every few seconds, a new TCP connection
    each time was most of /readyz's cost (bench/RESULTS.md, HTTP baseline)."""
    import redis

    return redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)


def _channel_layer() -> str:
    if not settings.REDIS_URL:
        return "in-memory"
    _redis_client(settings.REDIS_URL).ping()
    return "redis"


PROBE_TIMEOUT = 1.0  # seconds
REQUIRED = frozenset({"database"})  # without it this process serves nothing


@lru_cache(maxsize=4)
def _probe_s3(*settings_of_storage: str | None) -> Any:
    """A client of the storage's endpoint with short timeouts and no retries (boto's
    defaults wait a minute, and retry); one per storage settings."""
    import boto3
    from botocore.config import Config

    endpoint, region, access_key, secret_key, token = settings_of_storage
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        aws_session_token=token,
        config=Config(
            connect_timeout=PROBE_TIMEOUT, read_timeout=PROBE_TIMEOUT, retries={"max_attempts": 1}
        ),
    )


def _storage() -> str:
    if settings.STORAGE_BACKEND == "s3":
        storage: Any = storages["default"]
        client = _probe_s3(
            storage.endpoint_url,
            storage.region_name,
            storage.access_key or None,
            storage.secret_key or None,
            getattr(storage, "security_token", None) or None,
        )
        client.head_bucket(Bucket=storage.bucket_name)
        return "s3"
    settings.MEDIA_ROOT.mkdir(parents=True, exist_ok=True)
    return "local"


def _clamd() -> str:
    client = clamd_client()
    client.timeout = min(PROBE_TIMEOUT, client.timeout or PROBE_TIMEOUT)
    if client.ping() != "PONG":
        raise RuntimeError("clamd did not answer PONG")
    return "clamd"


def checks() -> dict[str, Callable[[], str]]:
    found: dict[str, Callable[[], str]] = {
        "database": _database,
        "cache": _cache,
        "channel_layer": _channel_layer,
        "storage": _storage,
    }
    if settings.CLAMD_SOCKET or settings.CLAMD_HOST:
        found["clamd"] = _clamd
    return found


def run_checks() -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    for name, check in checks().items():
        started = time.perf_counter()
        try:
            backend = check()
            results[name] = {"ok": True, "backend": backend}
        except Exception as exc:  # a probe reports failures, it must not raise them
            results[name] = {"ok": False, "error": type(exc).__name__}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    if settings.REDIS_URL:
        for name in ("cache", "channel_layer"):
            results[name].setdefault("backend", "redis")
    return results


_round = threading.Lock()
_last: tuple[float, dict[str, dict[str, Any]]] | None = None


def shared_checks() -> dict[str, dict[str, Any]]:
    """:func:`run_checks`, one round at a time: a call within ``HEALTH_READY_REUSE_SECONDS``
    of the last round, or while another round runs, answers the last round's results (only
    the process's very first calls wait for one)."""
    global _last
    reuse = float(getattr(settings, "HEALTH_READY_REUSE_SECONDS", 1.0))
    last = _last
    if last is not None and time.monotonic() - last[0] < reuse:
        return last[1]
    if last is None:
        _round.acquire()
    elif not _round.acquire(blocking=False):
        return last[1]
    try:
        last = _last
        if last is not None and time.monotonic() - last[0] < reuse:
            return last[1]
        results = run_checks()
        _last = (time.monotonic(), results)
        return results
    finally:
        _round.release()


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    results = shared_checks()
    down = sorted(
        f"{name} ({r.get('backend', name)})" for name, r in results.items() if not r["ok"]
    )
    unready = any(not results[name]["ok"] for name in REQUIRED if name in results)
    status = "down" if unready else ("degraded" if down else "ok")
    return JsonResponse(
        {"status": status, "down": down, "checks": results}, status=503 if unready else 200
    )
