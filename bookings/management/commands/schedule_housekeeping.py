from typing import Any

from django.core.management.base import BaseCommand

from bookings.tasks import ensure_housekeeping


class Command(BaseCommand):
    help = "Start the bookings housekeeping loop (expired holds, auto-completion) if it is not running."

    def handle(self, *args: Any, **options: Any) -> None:
        started = ensure_housekeeping()
        self.stdout.write("housekeeping scheduled" if started else "housekeeping already scheduled")
