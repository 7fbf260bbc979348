"""The admin's audit list stays cheap on a long trail: no COUNT(*) over the whole table and
no SELECT DISTINCT for its filters, yet it renders, filters and pages."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Role
from audit.admin import AuditEventAdmin
from audit.services import record
from tests.accounts.admin_site import staff_client, superuser

URL = "/admin/audit/auditevent/"
pytestmark = pytest.mark.django_db


@pytest.fixture
def short_pages(monkeypatch):
    monkeypatch.setattr(AuditEventAdmin, "list_per_page", 5)


def full_table_counts(queries: CaptureQueriesContext) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if re.match(r'SELECT COUNT\(\*\)( AS "__count")? FROM "audit_auditevent"', q["sql"])
        and " WHERE " not in q["sql"]
    ]


def distincts(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "SELECT DISTINCT" in q["sql"].upper()]


def test_the_list_runs_no_whole_table_count_nor_distinct_and_still_pages(short_pages):
    events = [record(action="record.viewed", target_id=f"r-{i}") for i in range(11)]
    record(action="auth.login", actor_role=Role.DOCTOR)
    client = staff_client(superuser())

    with CaptureQueriesContext(connection) as queries:
        page = client.get(URL)
    assert page.status_code == 200
    assert full_table_counts(queries) == []
    assert distincts(queries) == []
    changelist = page.context["cl"]
    assert (changelist.result_count, changelist.paginator.num_pages) == (12, 3)
    assert len(changelist.result_list) == 5

    last = client.get(URL, {"p": 3})
    assert [e.id for e in last.context["cl"].result_list] == [events[1].id, events[0].id]

    choices = {
        spec.title: [c["display"] for c in spec.choices(changelist)]
        for spec in (changelist.filter_specs)
    }
    assert choices["action"] == ["All", "auth.login", "record.viewed"]
    assert choices["actor role"] == ["All", *(label for _, label in Role.choices), "none"]


def test_the_filters_narrow_the_list(short_pages):
    record(action="record.viewed", actor_role=Role.DOCTOR)
    login = record(action="auth.login", actor_role=Role.DOCTOR)
    record(action="auth.login")
    client = staff_client(superuser())

    with CaptureQueriesContext(connection) as queries:
        page = client.get(URL, {"action": "auth.login", "actor_role": Role.DOCTOR})
    assert [e.id for e in page.context["cl"].result_list] == [login.id]
    assert full_table_counts(queries) == [] and distincts(queries) == []
    anonymous = client.get(URL, {"actor_role": "-"})
    assert [e.action for e in anonymous.context["cl"].result_list] == ["auth.login"]


def test_past_the_exact_count_the_list_takes_the_tables_estimate(short_pages, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("pg_class.reltuples is PostgreSQL's")
    monkeypatch.setattr("audit.admin.AuditEventPaginator.exact_up_to", 10)
    for i in range(23):
        record(action="record.viewed" if i % 2 else "auth.login", target_id=f"r-{i}")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_auditevent")
    client = staff_client(superuser())

    with CaptureQueriesContext(connection) as queries:
        page = client.get(URL)
    assert full_table_counts(queries) == []
    assert page.context["cl"].result_count == 23  # the estimate, exact after ANALYZE
    assert page.context["cl"].paginator.num_pages == 5

    filtered = client.get(URL, {"action": "record.viewed"})
    assert filtered.context["cl"].result_count == 11  # counting stopped at 10 + 1
    assert len(filtered.context["cl"].result_list) == 5
