"""Fold the stored names again, as doctors.geocoding.normalise now folds them: NFKD before
the Arabic letter folds (a name typed in presentation forms, "ﻣﻜﺔ", is "مكة"), and each
doctor's search_name with its words run together too ("عبدالله" finds "عبد الله حسن").

Profiles 2,000 at a time, each batch its own transaction (``atomic = False``, as 0007: in
one transaction the table stayed locked, and with it every booking), only the rows whose
value changes written. Clinics by distinct city, only the cities not all ASCII: an ASCII
name folds as before, and so do the gazetteer's names it adds (the Arabic ones are in the
basic Arabic letters, which NFKD leaves alone)."""

from django.db import migrations, transaction

BATCH = 2000


def fill_names(apps, schema_editor):
    from doctors.index import search_name

    profiles = apps.get_model("doctors", "DoctorProfile")
    last = None
    while True:
        rows = profiles.objects.order_by("pk")
        if last is not None:
            rows = rows.filter(pk__gt=last)
        page = list(
            rows.values_list("pk", "user__first_name", "user__last_name", "search_name")[:BATCH]
        )
        if not page:
            return
        changed = [
            profiles(pk=pk, search_name=name)
            for pk, first, last_, stored in page
            if (name := search_name(first, last_)) != stored
        ]
        if changed:
            with transaction.atomic():
                profiles.objects.bulk_update(changed, ["search_name"])
        last = page[-1][0]


def fill_cities(apps, schema_editor):
    from doctors.geocoding import city_key

    clinics = apps.get_model("doctors", "Clinic").objects
    for city in clinics.values_list("city", flat=True).distinct().order_by("city"):
        if city.isascii():
            continue
        key = city_key(city)
        with transaction.atomic():
            clinics.filter(city=city).exclude(city_names=key).update(city_names=key)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("doctors", "0007_doctorprofile_search_name_fill"),
    ]

    operations = [
        migrations.RunPython(fill_names, migrations.RunPython.noop),
        migrations.RunPython(fill_cities, migrations.RunPython.noop),
    ]
