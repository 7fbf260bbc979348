"""Fill search_name for the profiles stored, 2,000 at a time, each batch its own
transaction (``atomic = False``): in 0006's transaction the whole table stayed locked for the
whole backfill (27 s for 100,000 profiles), and with it every booking."""

from django.db import migrations, transaction

BATCH = 2000


def fill(apps, schema_editor):
    from doctors.index import search_name

    profiles = apps.get_model("doctors", "DoctorProfile")
    last = None
    while True:
        rows = profiles.objects.order_by("pk")
        if last is not None:
            rows = rows.filter(pk__gt=last)
        page = list(rows.values_list("pk", "user__first_name", "user__last_name")[:BATCH])
        if not page:
            return
        with transaction.atomic():
            profiles.objects.bulk_update(
                [
                    profiles(pk=pk, search_name=search_name(first, last_))
                    for pk, first, last_ in page
                ],
                ["search_name"],
            )
        last = page[-1][0]


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("doctors", "0006_doctorprofile_search_name"),
    ]

    operations = [
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
