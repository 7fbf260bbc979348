"""Per-request cost of JWT authentication, in one process.

Measures the same Django/Ninja stack twice: an anonymous trivial endpoint
(``GET /api/v1/info``) and an authenticated trivial one (``GET /api/v1/whoami``), with the
production session store (cache-backed sessions in Redis, PostgreSQL behind them). The
difference of the medians is what authentication adds per request: RS256 signature check,
the session lookup (stateful validation) and loading the user.

    .venv/bin/python bench/jwt_auth.py [--requests 3000]

Needs PostgreSQL and Redis on their default local ports; creates and drops its own database
(``telemed_bench_jwt``) and deletes only its own Redis keys.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DB = "telemed_bench_jwt"
PREFIX = f"telemed-bench-jwt-{uuid.uuid4().hex[:8]}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(client, path: str, headers: dict[str, str], n: int) -> list[float]:  # type: ignore[no-untyped-def]
    for _ in range(min(200, n)):  # warm-up: connections, caches, code paths
        assert client.get(path, headers=headers).status_code == 200
    out = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.get(path, headers=headers)
        out.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()

    subprocess.run(
        ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", DB], check=True
    )
    subprocess.run(["createdb", "-h", "127.0.0.1", "-U", "postgres", DB], check=True)
    os.environ.update(
        DJANGO_SETTINGS_MODULE="telemed.settings",
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{DB}",
        REDIS_URL="redis://127.0.0.1:6379/0",
        REDIS_KEY_PREFIX=PREFIX,
        TASK_WORKER_IN_PROCESS="false",
        DEBUG="false",
        LOG_LEVEL="WARNING",
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from allauth.account.models import EmailAddress
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client

    from accounts.models import User

    try:
        call_command("migrate", verbosity=0)
        user = User.objects.create_user("bench@example.com", "Bench-password-2026")
        EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
        client = Client()
        login = client.post(
            "/_allauth/app/v1/auth/login",
            {"email": user.email, "password": "Bench-password-2026"},
            content_type="application/json",
        )
        token = login.json()["meta"]["access_token"]
        anonymous = measure(client, "/api/v1/info", {}, args.requests)
        authed = measure(
            client, "/api/v1/whoami", {"Authorization": f"Bearer {token}"}, args.requests
        )
    finally:
        from django.db import connections

        connections.close_all()
        import redis

        r = redis.Redis.from_url(settings.REDIS_URL)
        keys = list(r.scan_iter(match=f"{PREFIX}*"))
        if keys:
            r.delete(*keys)
        subprocess.run(
            ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", DB],
            check=False,
        )

    print(
        f"session engine: {settings.SESSION_ENGINE}, hasher: {settings.PASSWORD_HASHERS[0].rsplit('.', 1)[-1]}"
    )
    print(f"cores: {os.cpu_count()}, requests per endpoint: {args.requests}")
    print("| endpoint | p50 ms | p95 ms | p99 ms | mean ms |")
    print("|---|---|---|---|---|")
    for name, values in (
        ("GET /api/v1/info (anonymous)", anonymous),
        ("GET /api/v1/whoami (JWT)", authed),
    ):
        print(
            f"| {name} | {percentile(values, 0.5):.3f} | {percentile(values, 0.95):.3f} | "
            f"{percentile(values, 0.99):.3f} | {statistics.fmean(values):.3f} |"
        )
    added = percentile(authed, 0.5) - percentile(anonymous, 0.5)
    print(f"\nJWT authentication adds {added:.3f} ms at p50 (target: under 1 ms)")


if __name__ == "__main__":
    main()
