"""A second NinjaAPI wired with the real error handlers, so the platform's error envelope can
be tested for request shapes no product endpoint takes yet (a JSON body, a crash, auth)."""

from django.http import HttpRequest
from django.urls import path
from ninja import Field, NinjaAPI, Schema
from ninja.security import APIKeyHeader

from core.errors import Conflict, Forbidden, RateLimited
from telemed import errors
from telemed.urls import urlpatterns as real_urlpatterns

probe = NinjaAPI(urls_namespace="probe", docs_url=None)
errors.install(probe)


class ItemIn(Schema):
    name: str = Field(..., max_length=10)
    count: int = Field(..., ge=1)


class NeverAuth(APIKeyHeader):
    param_name = "X-Key"

    def authenticate(self, request: HttpRequest, key: str | None) -> None:
        return None


@probe.post("/items")
def create_item(request: HttpRequest, payload: ItemIn) -> dict:
    return {"name": payload.name, "count": payload.count}


@probe.get("/boom")
def boom(request: HttpRequest) -> dict:
    raise RuntimeError("secret internal detail")


@probe.get("/database/{sqlstate}")
def database_error(request: HttpRequest, sqlstate: str) -> dict:
    """What Django raises when PostgreSQL ends a transaction: its OperationalError, caused by
    psycopg's error of that SQLSTATE."""
    from django.db import OperationalError
    from psycopg import errors as pg

    raise OperationalError("the database said no") from pg.lookup(sqlstate)()


@probe.get("/conflict")
def conflict(request: HttpRequest) -> dict:
    raise Conflict()


@probe.get("/forbidden")
def forbidden(request: HttpRequest) -> dict:
    raise Forbidden()


@probe.get("/limited")
def limited(request: HttpRequest) -> dict:
    raise RateLimited(retry_after=7)


@probe.get("/private", auth=NeverAuth())
def private(request: HttpRequest) -> dict:
    return {}


urlpatterns = [path("api/probe/", probe.urls), *real_urlpatterns]
