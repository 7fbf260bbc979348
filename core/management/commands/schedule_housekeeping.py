from typing import Any

from django.core.management.base import BaseCommand

from core.tasks import ensure_housekeeping


class Command(BaseCommand):
    help = (
        "Start every housekeeping loop (bookings: expired holds, lapsed requests, "
        "auto-completion, reminders, old Idempotency-Keys; records: purge; realtime: "
        "interrupted deliveries; core: tasks whose worker died) that is not already "
        "waiting. Idempotent: run it on every deploy."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        for path, started in ensure_housekeeping().items():
            self.stdout.write(f"{path}: {'scheduled' if started else 'already scheduled'}")
