"""Database helpers shared by the apps."""

from __future__ import annotations

from django.db import connection
from django.db.models import Model
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery


def insert_unless_conflict(obj: Model) -> bool:
    """One ``INSERT ... ON CONFLICT DO NOTHING`` of a new instance (the statement ``save()``
    would send, with that clause): True if it was stored. A unique or exclusion constraint in
    the way answers False instead of an error, so no savepoint is needed around it; a
    concurrent insert of the same key is waited for first. A key the database generates is
    not read back."""
    meta = type(obj)._meta
    fields = [
        f
        for f in meta.local_concrete_fields
        if not f.generated and not (f is meta.auto_field and obj.pk is None)
    ]
    query = InsertQuery(type(obj), on_conflict=OnConflict.IGNORE)
    query.insert_values(fields, [obj])
    with connection.cursor() as cursor:
        for sql, params in query.get_compiler(connection=connection).as_sql():
            cursor.execute(sql, params)
        stored = cursor.rowcount == 1
    if stored:
        obj._state.adding, obj._state.db = False, connection.alias
    return stored
