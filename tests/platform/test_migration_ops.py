"""Our migration operations."""

import pytest
from django.apps import apps
from django.db import connection, models
from django.db.migrations.state import ProjectState

from core.migration_ops import AddIndexConcurrentlyOnPostgres

INDEX = "notification_created_idx"  # built by realtime 0003


def _valid(name: str) -> tuple[bool] | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
            "WHERE c.relname = %s",
            [name],
        )
        return cursor.fetchone()


@pytest.mark.django_db(transaction=True)
def test_an_index_build_left_behind_does_not_stop_migrate_again():
    """CREATE INDEX CONCURRENTLY that failed or was cancelled leaves its index behind
    (INVALID, or valid with its migration unrecorded): the operation runs again."""
    assert _valid(INDEX) == (True,)  # as a build would have left it
    state = ProjectState.from_apps(apps)
    operation = AddIndexConcurrentlyOnPostgres(
        model_name="notification", index=models.Index(fields=["created_at"], name=INDEX)
    )
    with connection.schema_editor(atomic=False) as editor:
        operation.database_forwards("realtime", editor, state, state)
    assert _valid(INDEX) == (True,)
