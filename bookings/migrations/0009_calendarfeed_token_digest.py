"""Calendar feed tokens are kept as their SHA-256 digest: the rows of before are converted
in place, so the URLs already subscribed keep working."""

import hashlib

from django.db import migrations


def hash_tokens(apps, schema_editor):
    CalendarFeed = apps.get_model("bookings", "CalendarFeed")
    for pk, token in CalendarFeed.objects.values_list("pk", "token").iterator():
        digest = hashlib.sha256(token.encode()).hexdigest()
        CalendarFeed.objects.filter(pk=pk).update(token=digest)


def revoke_all(apps, schema_editor):
    """A digest cannot give its token back, and kept as a token it would become a working
    URL to whoever has seen it: going back revokes every feed (their owners make new ones)."""
    apps.get_model("bookings", "CalendarFeed").objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ('bookings', '0008_reminder_sweep_index'),
    ]

    operations = [
        migrations.RunPython(hash_tokens, revoke_all),
        migrations.RenameField(
            model_name='calendarfeed',
            old_name='token',
            new_name='token_digest',
        ),
    ]
