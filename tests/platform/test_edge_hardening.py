"""The edge of the server: body limits on every path, client addresses behind a proxy, what
reaches the logs, refused configurations, and Django's own refusals in the envelope."""

from __future__ import annotations

import json
import logging
import re
import sys

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpResponse
from django.test import Client, RequestFactory, override_settings
from uvicorn.main import main as uvicorn_cli

from core.logs import RedactSecretsFilter
from telemed.logging import JsonFormatter
from telemed.middleware import ApiGuardMiddleware
from tests import procs
from tests.asgi_edge import call as _call
from tests.asgi_edge import scope as _scope
from tests.factories import bearer, login, make_user
from tests.platform.test_compose import dockerfile_instructions, exec_form
from tests.platform.test_settings import PRODUCTION_ENV, run

ARABIC = re.compile(r"[\u0600-\u06FF]")
ENGLISH_413 = "The request body is too large."
probe = override_settings(ROOT_URLCONF="tests.platform.probe_api")


def error_of(response):
    body = response.json()
    assert set(body) == {"error"}
    return body["error"]


# --- Body limits at the ASGI edge ---------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/_allauth/app/v1/auth/login", "/admin/login/", "/calendar/x.ics", "/no/such/url"]
)
async def test_a_chunked_body_outside_the_api_is_cut_off_at_the_default_limit(settings, path):
    settings.API_MAX_BODY_BYTES = 3 * 65536
    scope = _scope(path, [(b"transfer-encoding", b"chunked")])
    status, body, read = await _call(scope, [b"x" * 65536] * 10)
    assert status == 413
    assert read == 4  # stopped at the first chunk past the limit, the rest never read
    assert json.loads(body)["error"]["code"] == "request.too_large"


async def test_a_declared_body_outside_the_api_over_the_limit_is_413_unread(settings):
    settings.API_MAX_BODY_BYTES = 1000
    scope = _scope("/admin/login/", [(b"content-length", b"1001")])
    status, _, read = await _call(scope, [b"x" * 1001])
    assert (status, read) == (413, 0)


async def test_a_small_body_outside_the_api_still_reaches_django(settings):
    settings.API_MAX_BODY_BYTES = 1000
    scope = _scope("/no/such/url", [(b"content-length", b"10")])
    status, _, _ = await _call(scope, [b"x" * 10])
    assert status == 404


@pytest.mark.parametrize(
    ("accept", "arabic"),
    [("en;q=0.1, ar;q=0.9", True), ("ar;q=0.2, en;q=0.8", False), ("fr, ar-EG;q=0.5", True)],
)
async def test_the_edge_413_speaks_the_preferred_language(settings, accept, arabic):
    settings.API_MAX_BODY_BYTES = 10
    headers = [(b"content-length", b"11"), (b"accept-language", accept.encode())]
    status, body, _ = await _call(_scope("/api/v1/info", headers), [b"x" * 11])
    message = json.loads(body)["error"]["message"]
    assert status == 413
    assert bool(ARABIC.search(message)) is arabic
    assert (message == ENGLISH_413) is not arabic


# --- allauth's per-IP limits behind a proxy ---------------------------------------------


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_allauth_limits_failures_per_client_behind_a_proxy(server_env, workdir):
    env = {**server_env, "AUDIT_TRUSTED_PROXY_COUNT": "1"}
    with procs.running(procs.start_server(workdir, env)) as proc:

        def fail_login(n: int) -> int:
            r = httpx.post(
                f"{proc.info['base']}/_allauth/app/v1/auth/login",
                json={"email": f"nobody{n}@example.org", "password": "wrong-password-1"},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            )
            return r.status_code

        # login_failed is 10/m/ip: eleven clients, one failure each, lock out none of them.
        assert [fail_login(n) for n in range(1, 12)] == [400] * 11
        assert fail_login(12) == 400


# --- What reaches the logs ----------------------------------------------------------------


@probe
def test_a_500_is_logged_without_the_query_string(api, caplog):
    secret = "near=12+Nile+Street&name=Mona"
    r = api.get(f"/api/probe/boom?{secret}")
    assert r.status_code == 500
    records = [rec for rec in caplog.records if rec.name == "django.request"]
    assert records, "django.request logged nothing"
    record = records[0]
    assert record.request == "GET /api/probe/boom"
    line = JsonFormatter().format(record)
    assert "Nile" not in line and "Mona" not in line
    assert all("Nile" not in rec.getMessage() for rec in caplog.records)


def test_query_strings_in_messages_are_redacted():
    record = logging.makeLogRecord(
        {
            "name": "django.server",
            "msg": '"%s" %s',
            "args": ("GET /admin/accounts/user/?q=mona@example.org HTTP/1.1", 200),
        }
    )
    assert RedactSecretsFilter().filter(record)
    message = record.getMessage()
    assert "mona" not in message
    assert message == '"GET /admin/accounts/user/?[redacted] HTTP/1.1" 200'
    prose = logging.makeLogRecord({"msg": "Is the cache up? yes"})
    RedactSecretsFilter().filter(prose)
    assert prose.getMessage() == "Is the cache up? yes"


# --- Configurations refused at startup ------------------------------------------------------


def test_manage_check_fails_on_a_too_short_field_key():
    r = run(
        [sys.executable, "manage.py", "check"],
        {**PRODUCTION_ENV, "FIELD_ENCRYPTION_KEYS": "k:AAAA"},
    )
    assert r.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS" in r.stderr and "must be 32 bytes" in r.stderr


def test_production_refuses_debug():
    r = run("import django; django.setup()", {**PRODUCTION_ENV, "DEBUG": "true"})
    assert r.returncode != 0
    assert "DEBUG must be off" in r.stderr


def test_the_image_server_bounds_socket_messages(settings):
    argv = exec_form([a for w, a in dockerfile_instructions() if w == "CMD"][-1])
    params = uvicorn_cli.make_context("uvicorn", argv[1:]).params
    assert settings.REALTIME_MAX_MESSAGE_BYTES <= params["ws_max_size"] <= 1024 * 1024


# --- Django's own refusals in the envelope --------------------------------------------------


@pytest.mark.django_db
def test_too_many_query_fields_is_422_not_a_crash(api, caplog):
    query = "&".join(f"f{i}=1" for i in range(1100))
    r = api.get(f"/api/v1/doctors?{query}", headers={"Accept-Language": "ar"})
    assert r.status_code == 422
    err = error_of(r)
    assert err["code"] == "request.invalid"
    assert ARABIC.search(err["message"])


def test_a_bad_host_is_logged_as_a_warning_not_an_error(caplog):
    # Django logs it as an error; every scanner that finds the address sends such requests.
    with caplog.at_level(logging.INFO):
        r = Client().get("/healthz?near=Nile", HTTP_HOST="evil.example")
    assert r.status_code == 400
    records = [rec for rec in caplog.records if rec.name == "django.security.DisallowedHost"]
    assert records, [rec.name for rec in caplog.records]
    assert {rec.levelno for rec in records} == {logging.WARNING}
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]
    assert not [rec for rec in caplog.records if rec.levelno >= logging.ERROR]


@pytest.mark.django_db
def test_too_many_files_is_422(api, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 1
    headers = bearer(login(api, make_user().email)["access"])
    files = [SimpleUploadedFile(f"{n}.pdf", b"%PDF-1.4", "application/pdf") for n in range(2)]
    r = api.post("/api/v1/records", {"title": "x", "file": files}, headers=headers)
    assert r.status_code == 422
    assert error_of(r)["message"] == "Too many fields or files were sent."


def test_a_bad_host_on_the_api_is_400_request_invalid(api):
    r = api.get("/api/v1/info", headers={"Host": "evil.example", "Accept-Language": "ar"})
    assert r.status_code == 400
    err = error_of(r)
    assert err["code"] == "request.invalid"
    assert ARABIC.search(err["message"])


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "request.invalid"),
        (403, "auth.forbidden"),  # Django's CSRF refusal
        (418, "request.invalid"),
        (503, "server.unavailable"),
        (502, "server.error"),
    ],
)
def test_django_pages_under_the_api_get_the_envelope_of_their_status(status, code):
    # What Django answers by itself (a CSRF refusal, a bad request) is an HTML page.
    page = HttpResponse("<h1>Refused</h1>", status=status, content_type="text/html")
    response = ApiGuardMiddleware(lambda request: page)(RequestFactory().get("/api/v1/x"))
    assert response.status_code == status
    assert json.loads(response.content)["error"]["code"] == code


# --- HEAD ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_head_does_not_run_a_get_that_audits(api):
    """A HEAD that ran the GET would audit a view or download that never happened (and spend
    its rate limit): it is 405 in the envelope, as any method a route does not name."""
    from audit.models import AuditEvent

    user = make_user()
    r = api.head("/api/v1/me", headers=bearer(login(api, user.email)["access"]))
    assert r.status_code == 405
    assert r["Allow"] and "GET" in r["Allow"]
    r = api.head(f"/api/v1/records/{user.pk}", headers=bearer(login(api, user.email)["access"]))
    assert r.status_code == 405
    assert not AuditEvent.objects.filter(action__startswith="records.").exists()


# --- The admin's per-IP failure limit counts an IPv6 /64 as one client ------------------------


@pytest.mark.django_db
def test_admin_failures_from_one_ipv6_64_count_together():
    def fail(ip: str, n: int) -> int:
        client = Client(REMOTE_ADDR=ip)
        data = {"step": "password", "email": f"nobody{n}@example.org", "password": "wrong-1"}
        return client.post("/admin/otp/enrol/", data).status_code

    # PASSWORD_FAILURES_PER_IP is 20 in 5 minutes.
    assert [fail(f"2001:db8:0:1::{n:x}", n) for n in range(1, 21)] == [200] * 20
    assert fail("2001:db8:0:1:ffff:ffff:ffff:ffff", 21) == 429
    assert fail("2001:db8:0:2::1", 22) == 200


def test_uvicorns_own_lines_go_through_our_handler():
    """uvicorn installs plain-text handlers before Django configures logging; once Django
    has, uvicorn's lines (start-up, invalid requests, tracebacks) reach the JSON console
    handler, redacted, like everything else."""
    import logging.config

    from django.conf import settings
    from uvicorn.config import LOGGING_CONFIG

    logging.config.dictConfig(LOGGING_CONFIG)  # what `uvicorn ...` does first
    try:
        assert logging.getLogger("uvicorn").handlers  # its own, plain text
        logging.config.dictConfig(settings.LOGGING)  # django.setup(), importing the app
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            logger = logging.getLogger(name)
            assert logger.handlers == [] and logger.propagate, name
        assert any(
            isinstance(f, RedactSecretsFilter)
            for h in logging.getLogger().handlers
            for f in h.filters
        )
    finally:
        logging.config.dictConfig(settings.LOGGING)
