"""Idempotency answers are stored encrypted: they can carry protected health information (a
booking's reason). The answers already stored (kept 24 h) are encrypted in place."""

from django.db import migrations

import core.fields


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
        migrations.RunPython(
            core.fields.encrypt_in_place(
                "core_idempotencyrecord", "body", "core.idempotencyrecord.body"
            ),
            migrations.RunPython.noop,
        ),
    ]
