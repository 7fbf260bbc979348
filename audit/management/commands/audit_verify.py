"""``manage.py audit_verify``: walk the audit hash chain and, when ``MONGODB_URI`` is set,
compare the primary with its MongoDB mirror; exit status 1 when either shows tampering.

The chain alone cannot show rows removed from its end: the mirror can. A mirror document
whose event the primary lacks, or holds with another hash, fails the check. Events the
mirror lacks are reported (how many, the first id) but do not fail it, since the mirror is
written after the event by the task worker; ``--repair-mirror`` enqueues their copies. An
unreachable mirror exits with status 2.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from pymongo.errors import PyMongoError

from audit.selectors import chain_check, mirror_check
from audit.tasks import mirror_event


def _enqueue_copies(event_ids: list[int]) -> None:
    with transaction.atomic():
        for event_id in event_ids:
            mirror_event.enqueue(event_id)


class Command(BaseCommand):
    help = (
        "Verify the audit trail's hash chain and, when MONGODB_URI is set, compare it with "
        "the MongoDB mirror; exits with status 1 at the first broken link or mismatch."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--repair-mirror",
            action="store_true",
            help="Enqueue a copy of each event the MongoDB mirror lacks.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        result = chain_check()
        if not result.ok:
            raise CommandError(
                f"audit chain BROKEN at event id {result.first_broken_id} ({result.reason}; "
                f"{result.checked} events read)",
                returncode=1,
            )
        self.stdout.write(f"audit chain OK: {result.checked} events")
        if getattr(settings, "MONGODB_URI", ""):
            self._compare_mirror(repair=options["repair_mirror"])
        elif options["repair_mirror"]:
            raise CommandError("--repair-mirror needs MONGODB_URI", returncode=2)

    def _compare_mirror(self, *, repair: bool) -> None:
        try:
            mirror = mirror_check(on_missing=_enqueue_copies if repair else None)
        except PyMongoError as exc:
            raise CommandError(
                f"audit mirror not compared: {type(exc).__name__}", returncode=2
            ) from exc
        if not mirror.ok:
            raise CommandError(
                f"audit mirror MISMATCH at event id {mirror.first_broken_id} ({mirror.reason}; "
                f"{mirror.broken} events differ, {mirror.matched} match)",
                returncode=1,
            )
        line = f"audit mirror OK: {mirror.matched} events match"
        if mirror.missing:
            line += (
                f"; {mirror.missing} not mirrored yet, the first id {mirror.first_missing_id}"
                + ("; their copies enqueued" if repair else " (--repair-mirror copies them)")
            )
        self.stdout.write(line)
