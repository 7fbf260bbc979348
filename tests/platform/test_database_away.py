"""No database connection to be had (the pool full, or the database away and the pool unable
to connect) is 503 try-again-shortly, as Redis away is, not a 500 logged as an error."""

from __future__ import annotations

import logging
import re

import pytest
from django.db import OperationalError, connection
from django.http import HttpRequest
from django.test import override_settings
from django.urls import path
from ninja import NinjaAPI
from psycopg_pool import PoolTimeout

from core.errors import ServiceUnavailable, infrastructure_error
from telemed import errors
from telemed.urls import urlpatterns as real_urlpatterns

ARABIC = re.compile(r"[\u0600-\u06FF]")

probe = NinjaAPI(urls_namespace="database-away", docs_url=None)
errors.install(probe)


@probe.get("/pool-timeout")
def pool_timeout(request: HttpRequest) -> dict:
    """What a request meets when the pool hands out no connection in ``DB_POOL_TIMEOUT``:
    psycopg's PoolTimeout, wrapped by Django as every error of the driver."""
    with connection.wrap_database_errors:
        raise PoolTimeout("couldn't get a connection after 10.00 sec")


urlpatterns = [path("api/away/", probe.urls), *real_urlpatterns]


@override_settings(ROOT_URLCONF=__name__)
def test_no_connection_from_the_pool_is_503_with_retry_after(api, caplog):
    r = api.get("/api/away/pool-timeout", headers={"Accept-Language": "ar"})
    assert r.status_code == 503
    error = r.json()["error"]
    assert error["code"] == "server.unavailable"
    assert ARABIC.search(error["message"])
    assert r["Retry-After"] == "5"
    ours = [rec for rec in caplog.records if rec.name == "telemed.errors"]
    assert [(rec.levelno, rec.getMessage()) for rec in ours] == [
        (logging.WARNING, "database unavailable: PoolTimeout")
    ]
    assert not [rec for rec in caplog.records if rec.exc_info]  # no traceback


def test_sockets_and_allauth_answer_the_same():
    """``infrastructure_error`` is the one answer of REST, sockets and allauth's endpoints."""
    try:
        with connection.wrap_database_errors:
            raise PoolTimeout("couldn't get a connection after 10.00 sec")
    except OperationalError as exc:
        answer = infrastructure_error(exc)
    assert isinstance(answer, ServiceUnavailable)
    assert answer.headers == {"Retry-After": "5"}


@pytest.mark.parametrize("cause", [None, "57P01"])
def test_other_database_errors_stay_server_errors(cause):
    """A connection lost in the middle of a transaction leaves its outcome unknown."""
    from psycopg import errors as pg

    exc = OperationalError("server closed the connection unexpectedly")
    exc.__cause__ = pg.lookup(cause)() if cause else None
    assert infrastructure_error(exc) is None
