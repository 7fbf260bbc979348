"""Profiles are validated as the API validates them: time zone, ISO 4217 currency, ISO 639-1
languages (validators only: nothing changes in the database)."""

import accounts.models
import doctors.models
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("doctors", "0004_clinic_city_names"),
    ]

    operations = [
        migrations.AlterField(
            model_name="doctorprofile",
            name="currency",
            field=models.CharField(
                default="EGP", max_length=3, validators=[doctors.models.validate_currency]
            ),
        ),
        migrations.AlterField(
            model_name="doctorprofile",
            name="languages",
            field=models.CharField(
                blank=True,
                default=",",
                max_length=100,
                validators=[doctors.models.validate_languages],
            ),
        ),
        migrations.AlterField(
            model_name="doctorprofile",
            name="time_zone",
            field=models.CharField(
                default="UTC", max_length=64, validators=[accounts.models.validate_time_zone]
            ),
        ),
    ]
