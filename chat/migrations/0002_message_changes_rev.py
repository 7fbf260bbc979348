# What a reconnecting client missed besides new messages (edits, deletions, a close or a
# reopen): the conversation's change counter and each message's last change. Safe on a live
# database: the columns are added without a rewrite or a scan (a constant default, a
# nullable column, no CHECK), and the index is built concurrently on PostgreSQL (a partial
# one: only changed messages, few of them).

from django.db import migrations, models

from core.migration_ops import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("chat", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="rev",
            field=models.BigIntegerField(default=0, db_default=0),
        ),
        migrations.AddField(
            model_name="conversation",
            name="state_rev",
            field=models.BigIntegerField(default=0, db_default=0),
        ),
        migrations.AddField(
            model_name="message",
            name="changed_rev",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        AddIndexConcurrentlyOnPostgres(
            model_name="message",
            index=models.Index(
                condition=models.Q(("changed_rev__isnull", False)),
                fields=["conversation", "changed_rev"],
                name="chat_message_changed",
            ),
        ),
    ]
