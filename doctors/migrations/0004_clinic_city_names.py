"""The names each clinic's city goes by (English, Arabic, as given), for the city filter:
worked out once per distinct city of the clinics already stored."""

from django.db import migrations, models


def fill(apps, schema_editor):
    from doctors.geocoding import city_key

    clinics = apps.get_model("doctors", "Clinic").objects
    for city in clinics.values_list("city", flat=True).distinct():
        clinics.filter(city=city).update(city_names=city_key(city))


class Migration(migrations.Migration):
    dependencies = [
        ("doctors", "0003_fee_minor_units_by_currency"),
    ]

    operations = [
        migrations.AddField(
            model_name="clinic",
            name="city_names",
            field=models.CharField(blank=True, default="", max_length=400),
        ),
        migrations.RunPython(fill, migrations.RunPython.noop),
    ]
