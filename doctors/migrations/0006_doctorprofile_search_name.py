"""Each profile keeps its account's name folded as the name filter compares it (Arabic
letter forms, accents, case: doctors.index.search_name); 0007 fills it for the profiles
stored."""

from django.db import migrations, models


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
    ]
