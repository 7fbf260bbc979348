from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.test import Client
from django.utils import translation

from tests import procs


def delete_own_redis_keys() -> None:
    """Delete every Redis key this run wrote: they all carry its unique prefix. (Django's
    ``cache.clear()`` would FLUSHDB the whole database, other people's keys included.)"""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"*{settings.REDIS_KEY_PREFIX}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(scope="session", autouse=True)
def _redis_cleanup() -> Iterator[None]:
    yield
    delete_own_redis_keys()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """pytest-django's, and before it drops the test database: end the sessions still on it
    (a server or worker process of a test, or a thread's connection, not yet gone), which
    would make the drop fail and leave the database behind. Each is named on stderr."""
    yield
    import sys

    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, application_name, state, left(query, 80), "
            "pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        for row in cursor.fetchall():
            print(f"ended a session left on the test database: {row[:4]}", file=sys.stderr)


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Each test starts with an empty cache (rate-limit counters, sessions, tickets)."""
    delete_own_redis_keys()
    yield


@pytest.fixture(autouse=True)
def _default_language() -> Iterator[None]:
    """Each test starts in the default language: Django's LocaleMiddleware activates the
    request's language in the thread and never deactivates it, so an Arabic request made
    through the test client would leak into the next test's code outside a request."""
    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture
def api() -> Client:
    return Client()


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("procs")


@pytest.fixture(scope="session")
def clamd_socket(workdir: Path) -> Iterator[str]:
    with procs.running(procs.start_clamd(workdir / "clamd")) as proc:
        yield proc.info["socket"]


@pytest.fixture(scope="session")
def s3_endpoint(workdir: Path) -> Iterator[str]:
    (workdir / "moto").mkdir(exist_ok=True)
    with procs.running(procs.start_moto(workdir / "moto")) as proc:
        yield proc.info["endpoint"]


@pytest.fixture
def private_redis(workdir: Path) -> Iterator[procs.Proc]:
    """A Redis of our own, for tests that stop or flush it."""
    d = workdir / f"redis-{os.urandom(4).hex()}"
    d.mkdir()
    with procs.running(procs.start_redis(d)) as proc:
        yield proc


@pytest.fixture
def server_env(django_db_setup: None, django_db_blocker: pytest.FixtureRequest) -> dict[str, str]:
    """Environment for a server process sharing this test run's database and Redis prefix."""
    db = settings.DATABASES["default"]
    return {
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "TASK_WORKER_IN_PROCESS": "false",
    }


@pytest.fixture
def live_server_proc(
    server_env: dict[str, str], workdir: Path, transactional_db: None
) -> Iterator[procs.Proc]:
    with procs.running(procs.start_server(workdir, server_env)) as proc:
        yield proc
