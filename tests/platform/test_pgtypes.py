"""``core.pgtypes``: ``timestamptz`` values are read by psycopg's C loader, and read as
Django's own loader reads them (aware datetimes in ``datetime.UTC``)."""

from __future__ import annotations

from datetime import UTC

import pytest
from django.db import connection
from django.db.backends.postgresql.psycopg_any import BaseTzLoader
from psycopg import _cmodule
from psycopg.adapt import Transformer

pytestmark = pytest.mark.django_db

VALUES = [
    "2026-03-27 23:59:59.123456+03",  # a zone ahead, microseconds
    "2026-10-25 01:30:00-05",  # behind UTC
    "2026-12-31 23:00:00-02",  # the year changes in UTC
    "2024-02-29 00:00:00.000001+00",  # leap day
    "0001-01-01 00:00:00+00",  # the first instant Python knows
    "9999-12-31 23:59:59.999999+00",  # the last
    "1970-01-01 00:00:00+05:30",  # a half-hour offset before the epoch in UTC
]


def test_timestamptz_is_read_in_c_and_as_django_reads_it():
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    sql = "SELECT " + ", ".join(f"%s::timestamptz AS v{i}" for i in range(len(VALUES)))
    with connection.cursor() as cursor:
        cursor.execute(sql, VALUES)
        found = cursor.fetchone()
        loader = cursor.cursor._tx.get_loader(cursor.description[0].type_code, 0)
        # what Django's own loader makes of the same text the server sent
        cursor.execute(
            "SELECT " + ", ".join(f"(%s::timestamptz)::text AS v{i}" for i in range(len(VALUES))),
            VALUES,
        )
        texts = cursor.fetchone()
        django_loader = type("L", (BaseTzLoader,), {"timezone": UTC})(1184, Transformer())
        expected = [django_loader.load(t.encode()) for t in texts]

    assert type(loader) is _cmodule._psycopg.TimestamptzLoader
    assert list(found) == expected
    assert all(value.tzinfo is UTC for value in found)
    assert [v.isoformat() for v in found] == [v.isoformat() for v in expected]


def test_values_through_the_orm_keep_their_instant_and_zone(django_user_model):
    user = django_user_model.objects.create_user(email="tz@example.com", password="x")
    read = django_user_model.objects.get(pk=user.pk)
    assert read.date_joined == user.date_joined and read.date_joined.tzinfo is UTC
