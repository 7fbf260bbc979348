"""Double booking is impossible at the database (PostgreSQL): exclusion constraints over the
doctor's and the patient's time ranges for active appointments. Needs the btree_gist extension
(created here; in production the migrating role must be allowed to, or a DBA creates it once).
SQLite has no such constraint; its IMMEDIATE write transactions serialise bookings instead."""

from django.db import migrations

ACTIVE = "('held', 'pending', 'confirmed')"


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS btree_gist")
    for name, column in (("appt_doctor_no_overlap", "doctor_id"), ("appt_patient_no_overlap", "patient_id")):
        schema_editor.execute(
            f"ALTER TABLE bookings_appointment ADD CONSTRAINT {name} EXCLUDE USING gist "
            f"({column} WITH =, tstzrange(start, \"end\", '[)') WITH &&) WHERE (status IN {ACTIVE})"
        )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in ("appt_doctor_no_overlap", "appt_patient_no_overlap"):
        schema_editor.execute(f"ALTER TABLE bookings_appointment DROP CONSTRAINT IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("bookings", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
