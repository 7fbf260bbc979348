# The indexes of the deliveries' housekeeping: built concurrently on PostgreSQL, so that
# notify() (inside every booking) is not held while they build on a large table.

from django.conf import settings
from django.db import migrations, models

from core.migration_ops import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("realtime", "0002_events_deliveries"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="delivery",
            index=models.Index(
                condition=models.Q(("status__in", ["queued", "sending"])),
                fields=["status", "updated_at"],
                name="delivery_pending_idx",
            ),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="notification",
            index=models.Index(fields=["created_at"], name="notification_created_idx"),
        ),
    ]
