"""Database helpers shared by the apps."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, TypeVar

from django.db import connection
from django.db.models import Model
from django.db.models.base import ModelState
from django.db.models.constants import OnConflict

M = TypeVar("M", bound=Model)


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
    SQLite serialises writers instead): for :func:`fetch`."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(f.column)) for f in model._meta.concrete_fields)
    sql = f"SELECT {columns} FROM {quote(model._meta.db_table)} WHERE {where}"  # noqa: S608
    return sql + " FOR UPDATE" if lock and connection.features.has_select_for_update else sql


def fetch(model: type[Model], sql: str, params: Sequence[Any]) -> list[Any]:
    """The instances of ``model`` that ``sql`` (a :func:`select_sql`) finds, each value
    converted as the ORM converts it (times, UUIDs and encrypted text on SQLite and
    PostgreSQL alike). ``model.objects.raw()`` does the same, but works out the columns and
    their converters again for every query: most of its cost on a one-row read."""
    fields = tuple(model._meta.concrete_fields)
    attnames = [f.attname for f in fields]
    return [model.from_db(connection.alias, attnames, row) for row in values(sql, params, fields)]


def stored(
    model: type[M], attributes: dict[str, Any], related: dict[str, Model] | None = None
) -> M:
    """An instance of ``model`` for a row already in the database, from every concrete
    field's value (by ``attname``), as ``model.from_db`` makes one but without ``__init__``
    (its work per field and its ``pre_init``/``post_init`` signals: ~6 us a row, 3 ms of a
    500-recipient ``notify()``). ``related``: instances to cache as the row's relations (by
    field name: ``n.user`` without a query). Only for models without init signal receivers."""
    if len(attributes) != len(model._meta.concrete_fields):
        raise ValueError(f"{model.__name__}: every concrete field's value is needed")
    obj = model.__new__(model)
    obj.__dict__.update(attributes)
    state = obj._state = ModelState()
    state.adding, state.db = False, connection.alias
    if related:
        state.fields_cache.update(related)
    return obj


def values(sql: str, params: Sequence[Any], fields: Sequence[Any]) -> list[Any]:
    """The rows of a hand-written ``sql``, column ``i`` converted as the ORM converts
    ``fields[i]`` (what ``values_list`` answers; a column of a ``UNION`` comes back from
    SQLite as text, and its field's converters parse it). A ``None`` field: no conversion."""
    converters = _converters(tuple(fields), connection.vendor)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not converters:
        return rows
    found = []
    for row in rows:
        converted = list(row)
        for i, functions, column in converters:
            for convert in functions:
                converted[i] = convert(converted[i], column, connection)
        found.append(tuple(converted))
    return found


@functools.cache
def _converters(fields: tuple[Any, ...], vendor: str) -> list[Any]:
    """For each of ``fields`` that needs them, its index and the backend's and the field's
    converters (as the ORM's ``SQLCompiler.get_converters`` finds them)."""
    converters = []
    for i, field in enumerate(fields):
        if field is None:
            continue
        column = field.get_col(field.model._meta.db_table)
        functions = connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        if functions:
            converters.append((i, functions, column))
    return converters


def insert(obj: Model, *, ignore_conflicts: bool = False) -> bool:
    """The ``INSERT`` that ``obj.save()`` sends for a new row (a key the database generates is
    read back), built once per model instead of by the ORM for every row: for inserts on hot
    paths (each chat message, each booking). True if the row was stored.

    With ``ignore_conflicts`` the statement is ``INSERT ... ON CONFLICT DO NOTHING``
    (``INSERT OR IGNORE`` on SQLite): a unique or exclusion constraint in the way answers
    False instead of an error, so no savepoint is needed around it, and a concurrent insert
    of the same key is waited for first. Sends no ``pre_save``/``post_save`` signals: only for
    models that have no receivers."""
    fields, sql, returning = _insert_sql(type(obj), ignore_conflicts, connection.vendor)
    params = [f.get_db_prep_save(f.pre_save(obj, True), connection) for f in fields]
    auto = obj._meta.auto_field
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if returning:  # the row's key, or no row if a conflict was ignored
            row = cursor.fetchone()
            stored = row is not None
        else:  # (SQLite counts rows of an INSERT ... RETURNING only once they are read)
            stored = cursor.rowcount == 1
        if stored and auto is not None:
            pk = (
                row[0]
                if returning
                else connection.ops.last_insert_id(cursor, obj._meta.db_table, str(auto.column))
            )
            setattr(obj, auto.attname, pk)
    if stored:
        obj._state.adding, obj._state.db = False, connection.alias
    return stored


@functools.cache
def _insert_sql(
    model: type[Model], ignore_conflicts: bool, vendor: str
) -> tuple[list[Any], str, bool]:
    meta = model._meta
    ops, quote = connection.ops, connection.ops.quote_name
    fields = [f for f in meta.local_concrete_fields if not f.generated and f is not meta.auto_field]
    on_conflict = OnConflict.IGNORE if ignore_conflicts else None
    sql = (
        f"{ops.insert_statement(on_conflict=on_conflict)} {quote(meta.db_table)} "
        f"({', '.join(quote(str(f.column)) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    sql += ops.on_conflict_suffix_sql(fields, on_conflict, None, None) or ""
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
