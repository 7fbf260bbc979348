from typing import Any

from django.core.management.base import BaseCommand

from records.tasks import ensure_records_housekeeping


class Command(BaseCommand):
    help = "Start the records purge loop (deleted files past retention) if it is not running."

    def handle(self, *args: Any, **options: Any) -> None:
        started = ensure_records_housekeeping()
        self.stdout.write(
            "records purge scheduled" if started else "records purge already scheduled"
        )
