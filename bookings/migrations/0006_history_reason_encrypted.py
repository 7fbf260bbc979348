"""What people write as the reason of a transition (why a doctor cancels or rejects) can be
clinical: the history's reasons are stored encrypted, those already stored encrypted in
place."""

from django.db import migrations

import core.fields


class Migration(migrations.Migration):
    dependencies = [
        ("bookings", "0005_clinic_protect_upcoming"),
    ]

    operations = [
        migrations.AlterField(
            model_name="statuschange",
            name="reason",
            field=core.fields.EncryptedTextField(blank=True, default=""),
        ),
        migrations.RunPython(
            core.fields.encrypt_in_place(
                "bookings_statuschange", "reason", "bookings.statuschange.reason"
            ),
            migrations.RunPython.noop,
        ),
    ]
