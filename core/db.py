"""Database helpers shared by the apps."""

from __future__ import annotations

from typing import Any

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


def db_value(model: type[Model], field_name: str, value: Any) -> Any:
    """``value`` as the database stores ``model.field_name`` (a UUID as 32 hex digits and a
    time as text on SQLite, for example): parameters of hand-written SQL."""
    return model._meta.get_field(field_name).get_db_prep_value(value, connection)  # type: ignore[union-attr]


def names(model: type[Model], *field_names: str) -> tuple[str, ...]:
    """``model``'s quoted table name, then the quoted columns of ``field_names``: hand-written
    SQL that follows the models (a renamed column changes the SQL, not a string)."""
    quote = connection.ops.quote_name
    meta = model._meta
    columns = [str(meta.get_field(f).column) for f in field_names]  # type: ignore[union-attr]
    return (quote(meta.db_table), *(quote(c) for c in columns))


def select_sql(model: type[Model], where: str, *, lock: bool = False) -> str:
    """``SELECT`` every column of ``model`` ``WHERE where`` (hand-written, with ``%s``
    placeholders), locking the rows found with ``lock`` where the database can (PostgreSQL;
    SQLite serialises writers instead): for ``model.objects.raw()``, which converts the
    values as the ORM does."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in model._meta.concrete_fields)
    sql = f"SELECT {columns} FROM {quote(model._meta.db_table)} WHERE {where}"  # noqa: S608
    return sql + " FOR UPDATE" if lock and connection.features.has_select_for_update else sql
