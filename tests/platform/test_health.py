import boto3
import httpx
import pytest
from django.test import override_settings

from tests import procs


def test_healthz(api):
    r = api.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_every_dependency(api):
    r = api.get("/readyz")
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["down"] == []
    assert body["checks"]["database"]["backend"] == "postgresql"
    assert body["checks"]["cache"]["backend"] == "redis"
    assert body["checks"]["channel_layer"]["backend"] == "redis"
    assert "clamd" not in body["checks"]  # not configured


@pytest.mark.django_db
def test_readyz_checks_clamd_when_configured(api, clamd_socket):
    with override_settings(CLAMD_SOCKET=clamd_socket):
        body = api.get("/readyz").json()
    assert body["checks"]["clamd"]["ok"] is True


@pytest.mark.django_db
def test_readyz_names_clamd_when_it_is_down_and_stays_ready(api, tmp_path):
    # Shared by every replica: failing readiness on it would empty the load balancer.
    with override_settings(CLAMD_SOCKET=str(tmp_path / "nothing.sock"), CLAMD_TIMEOUT=1):
        r = api.get("/readyz")
    assert r.status_code == 200
    assert r.json()["status"] == "degraded"
    assert r.json()["down"] == ["clamd (clamd)"]


@pytest.mark.django_db
def test_a_hung_clamd_holds_the_probe_about_a_second(api, tmp_path):
    import socket
    import time

    path = str(tmp_path / "hung.sock")
    with socket.socket(socket.AF_UNIX) as hung:  # accepts, never answers
        hung.bind(path)
        hung.listen(1)
        with override_settings(CLAMD_SOCKET=path, CLAMD_TIMEOUT=30):
            started = time.monotonic()
            r = api.get("/readyz")
            took = time.monotonic() - started
    assert r.json()["down"] == ["clamd (clamd)"]
    assert took < 10  # not CLAMD_TIMEOUT's 30 s


@pytest.mark.django_db
def test_readyz_is_503_when_the_database_is_down(api, monkeypatch):
    from telemed import health

    def down() -> str:
        raise OSError("connection refused")

    monkeypatch.setattr(health, "_database", down)
    r = api.get("/readyz")
    assert r.status_code == 503
    assert r.json()["status"] == "down" and "database (database)" in r.json()["down"]


def _s3_storages(endpoint: str, bucket: str) -> dict:
    return {
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "endpoint_url": endpoint,
                "region_name": "us-east-1",
                "access_key": "test",
                "secret_key": "test",
            },
        },
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.mark.django_db
def test_readyz_checks_s3_storage(api, s3_endpoint):
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    ).create_bucket(Bucket="readyz-ok")
    with override_settings(STORAGE_BACKEND="s3", STORAGES=_s3_storages(s3_endpoint, "readyz-ok")):
        body = api.get("/readyz").json()
        assert body["checks"]["storage"] == {
            "ok": True,
            "backend": "s3",
            "ms": body["checks"]["storage"]["ms"],
        }
        with override_settings(STORAGES=_s3_storages(s3_endpoint, "no-such-bucket")):
            r = api.get("/readyz")
    assert r.status_code == 200
    assert r.json()["status"] == "degraded"
    assert "storage (storage)" in r.json()["down"]


def test_readyz_names_redis_when_it_stops_and_healthz_keeps_serving(
    private_redis, server_env, workdir
):
    env = {**server_env, "REDIS_URL": private_redis.info["url"]}
    with procs.running(procs.start_server(workdir, env)) as server:
        base = server.info["base"]
        assert httpx.get(base + "/readyz", timeout=10).status_code == 200
        private_redis.stop()
        r = httpx.get(base + "/readyz", timeout=10)
        assert (r.status_code, r.json()["status"]) == (200, "degraded")
        assert set(r.json()["down"]) == {"cache (redis)", "channel_layer (redis)"}
        assert httpx.get(base + "/healthz", timeout=5).status_code == 200
        assert httpx.get(base + "/api/v1/info", timeout=5).status_code == 200


@pytest.mark.django_db
def test_web_connections_run_no_parallel_plans():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW max_parallel_workers_per_gather")
        assert cursor.fetchone()[0] == "0"


@pytest.mark.django_db
def test_readyz_runs_one_round_of_probes_at_a_time_and_reuses_it(api, settings, monkeypatch):
    """The endpoint needs no credential: calls at once must not each hold a request thread
    for a hung service's timeout. One round runs; calls meanwhile, and within the reuse
    time, answer its results."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from telemed import health

    settings.HEALTH_READY_REUSE_SECONDS = 60.0
    monkeypatch.setattr(health, "_last", None)
    rounds: list[int] = []
    release = threading.Event()
    real = health.run_checks

    def slow_round() -> dict:
        rounds.append(1)
        if len(rounds) == 2:
            release.wait(10)  # a hung service, during the second round
        return real()

    monkeypatch.setattr(health, "run_checks", slow_round)
    assert api.get("/readyz").status_code == 200  # the first round
    assert api.get("/readyz").json()["status"] == "ok"  # reused
    assert len(rounds) == 1
    settings.HEALTH_READY_REUSE_SECONDS = 0.0  # the next call starts a round that hangs
    with ThreadPoolExecutor(6) as pool:
        hung = pool.submit(health.shared_checks)
        while len(rounds) < 2:
            time.sleep(0.01)
        others = [pool.submit(health.shared_checks) for _ in range(5)]
        answers = [f.result(timeout=5) for f in others]  # not held by the hung round
        release.set()
        hung.result(timeout=10)
    assert len(rounds) == 2
    assert all(a["database"]["ok"] for a in answers)
