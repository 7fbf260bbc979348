"""Re-encrypt every encrypted column under the current (first) key of FIELD_ENCRYPTION_KEYS.

Rotation: put a new key first in FIELD_ENCRYPTION_KEYS and keep the old ones after it,
deploy, run this command, then drop the old keys. ``--new-key ID`` prints a fresh entry.

Two kinds of sealed values are not columns, and are not re-encrypted here: a code SMS waiting
in the task queue (sealed under the key of its time; sent or given up within a minute of its
turn) and a break-glass reason in the append-only audit trail (``audit.services.seal``). So
drop an old key no sooner than a few minutes after the task queue has drained since the
deploy, and only once the reasons sealed under it need no longer be read.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from core import crypto
from core.fields import encrypted_fields


class Command(BaseCommand):
    help = "Re-encrypt encrypted fields under the current key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--new-key", metavar="ID", help="print a new key entry and exit")
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, **options: Any) -> None:
        if options["new_key"]:
            self.stdout.write(crypto.generate_key_spec(options["new_key"]))
            return
        batch_size = options["batch_size"]
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        current = crypto.keyring().current_id
        total = 0
        prefix = f"{crypto.PREFIX}:{current}:"
        for field in encrypted_fields():
            model = field.model
            column = field.column
            table = model._meta.db_table
            pk_name = model._meta.pk.attname
            stale = (
                model._default_manager.exclude(**{f"{field.attname}__isnull": True})
                # Compared as text, not LIKE: a key id may hold "_" or "%", LIKE's wildcards
                # ("k_2" would pass over values under "kx2", lost once that key is dropped).
                .extra(where=[f"substr({column}, 1, %s) <> %s"], params=[len(prefix), prefix])  # noqa: S610
                .values_list(pk_name, flat=True)
            )
            ids = list(stale)
            done = 0  # what was written: a row deleted meanwhile is not counted
            for start in range(0, len(ids), batch_size):
                chunk = ids[start : start + batch_size]
                with transaction.atomic():
                    for obj in model._default_manager.select_for_update().filter(pk__in=chunk):
                        done += model._default_manager.filter(pk=obj.pk).update(
                            **{field.attname: getattr(obj, field.attname)}
                        )
            total += done
            self.stdout.write(f"{table}.{column}: {done} re-encrypted")
        self.stdout.write(self.style.SUCCESS(f"done: {total} values now under key {current}"))
