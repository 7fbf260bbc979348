"""Model fields that encrypt protected health information with :mod:`core.crypto`."""

from __future__ import annotations

import json
from typing import Any

from django.db import models

from core import crypto


class EncryptedTextField(models.TextField):
    """Text stored encrypted; Python code sees plain text.

    Lookups other than ``isnull`` cannot work on ciphertext and are refused by design.
    """

    def get_internal_type(self) -> str:
        return "TextField"

    @property
    def crypto_context(self) -> str:
        return f"{self.model._meta.label_lower}.{self.name}"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> str | None:
        if not value:  # None, or an empty value stored before the column was encrypted
            return value  # type: ignore[no-any-return]
        return crypto.decrypt(value, context=self.crypto_context)

    def get_prep_value(self, value: Any) -> str | None:
        value = super().get_prep_value(value)
        if value is None:
            return None
        return crypto.encrypt(str(value), context=self.crypto_context)

    def get_lookup(self, lookup_name: str):  # type: ignore[override]
        if lookup_name != "isnull":
            return None
        return super().get_lookup(lookup_name)


class EncryptedJSONField(EncryptedTextField):
    """A JSON value stored encrypted (its compact JSON text, as :class:`EncryptedTextField`
    stores text); Python code sees the value."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        text = super().from_db_value(value, expression, connection)
        return None if text is None else json.loads(text)

    def to_python(self, value: Any) -> Any:
        return value

    def get_prep_value(self, value: Any) -> str | None:
        if value is None:
            return None
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return crypto.encrypt(text, context=self.crypto_context)


def encrypted_fields() -> list[EncryptedTextField]:
    from django.apps import apps

    return [
        field
        for model in apps.get_models()
        for field in model._meta.get_fields()
        if isinstance(field, EncryptedTextField)
    ]


def encrypt_in_place(table: str, column: str, context: str) -> Any:
    """A data migration's function: encrypt the plain values of ``table.column`` (a column
    that has just become an encrypted field, whose context is ``context``), in place."""

    def run(apps: Any, schema_editor: Any) -> None:
        connection = schema_editor.connection
        quote = connection.ops.quote_name
        where = f"{quote(column)} IS NOT NULL AND {quote(column)} <> ''"  # '' reads as ''"
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT id, {quote(column)} FROM {quote(table)} WHERE {where}")  # noqa: S608
            for pk, value in cursor.fetchall():
                if crypto.key_id_of(value) is None:  # not encrypted yet
                    cursor.execute(
                        f"UPDATE {quote(table)} SET {quote(column)} = %s WHERE id = %s",  # noqa: S608
                        [crypto.encrypt(value, context=context), pk],
                    )

    return run
