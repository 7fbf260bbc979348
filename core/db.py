"""Database helpers shared by the apps."""

from __future__ import annotations

import functools
from collections.abc import Sequence
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


def insert(obj: Model) -> None:
    """The ``INSERT`` that ``obj.save()`` sends for a new row (a generated key is read back),
    without the ORM building it again for every row: for the few inserts on a hot path
    (each chat message). Sends no ``pre_save``/``post_save`` signals: only for models that
    have no receivers."""
    fields, sql, returning = _insert_sql(type(obj), connection.vendor)
    params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    auto = obj._meta.auto_field
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if auto is not None:
            if returning:
                pk = cursor.fetchone()[0]
            else:
                pk = connection.ops.last_insert_id(cursor, obj._meta.db_table, str(auto.column))
            setattr(obj, auto.attname, pk)
    obj._state.adding, obj._state.db = False, connection.alias


@functools.cache
def _insert_sql(model: type[Model], vendor: str) -> tuple[list[Any], str, bool]:
    meta = model._meta
    quote = connection.ops.quote_name
    fields = [f for f in meta.local_concrete_fields if not f.generated and f is not meta.auto_field]
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(str(f.column)) for f in fields)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    returning = meta.auto_field is not None and connection.features.can_return_columns_from_insert
    if returning:
        sql += f" RETURNING {quote(str(meta.auto_field.column))}"  # type: ignore[union-attr]
    return fields, sql, returning


def update(obj: Model, field_names: Sequence[str]) -> None:
    """``obj.save(update_fields=field_names)``'s ``UPDATE``, without the ORM building it
    again each time; no signals (as :func:`insert`)."""
    fields, sql = _update_sql(type(obj), tuple(field_names), connection.vendor)
    params = [f.get_db_prep_save(f.pre_save(obj, False), connection) for f in fields]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, obj._meta.pk.get_db_prep_value(obj.pk, connection)])  # type: ignore[union-attr]


@functools.cache
def _update_sql(
    model: type[Model], field_names: tuple[str, ...], vendor: str
) -> tuple[list[Any], str]:
    meta = model._meta
    quote = connection.ops.quote_name
    fields = [meta.get_field(name) for name in field_names]
    assignments = ", ".join(f"{quote(str(f.column))} = %s" for f in fields)  # type: ignore[union-attr]
    pk = quote(str(meta.pk.column))  # type: ignore[union-attr]
    return fields, f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {pk} = %s"  # noqa: S608
