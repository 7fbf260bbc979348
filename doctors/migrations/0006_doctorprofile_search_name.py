"""Each profile keeps its account's name folded as the name filter compares it (Arabic
letter forms, accents, case: doctors.index.search_name), filled for the profiles stored."""

from django.db import migrations, models


def fill(apps, schema_editor):
    from doctors.index import search_name

    profiles = apps.get_model("doctors", "DoctorProfile")
    batch = []
    for pk, first, last in profiles.objects.values_list(
        "pk", "user__first_name", "user__last_name"
    ).iterator(chunk_size=2000):
        batch.append(profiles(pk=pk, search_name=search_name(first, last)))
        if len(batch) == 2000:
            profiles.objects.bulk_update(batch, ["search_name"])
            batch = []
    profiles.objects.bulk_update(batch, ["search_name"])


class Migration(migrations.Migration):
    dependencies = [
        ("doctors", "0005_doctorprofile_validators"),
    ]

    operations = [
        migrations.AddField(
            model_name="doctorprofile",
            name="search_name",
            field=models.TextField(blank=True, default="", editable=False),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
