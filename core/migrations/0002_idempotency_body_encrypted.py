"""Idempotency answers are stored encrypted: they can carry protected health information (a
booking's reason). The answers already stored (kept 24 h) are encrypted in place."""

from django.db import migrations

import core.fields


def encrypt_stored(apps, schema_editor):
    from core import crypto

    connection = schema_editor.connection
    table = connection.ops.quote_name("core_idempotencyrecord")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, body FROM {table} WHERE body IS NOT NULL")  # noqa: S608
        rows = cursor.fetchall()
        for pk, body in rows:
            if body.startswith(f"{crypto.PREFIX}:"):
                continue
            sealed = crypto.encrypt(body, context="core.idempotencyrecord.body")
            cursor.execute(f"UPDATE {table} SET body = %s WHERE id = %s", [sealed, pk])  # noqa: S608


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="idempotencyrecord",
            name="body",
            field=core.fields.EncryptedJSONField(null=True),
        ),
        migrations.RunPython(encrypt_stored, migrations.RunPython.noop),
    ]
