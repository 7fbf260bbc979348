"""Once after upgrading: clean files on S3 promoted before their objects carried the headers
they are served with get them (``records.services.clean_objects_restamp``)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from records.services import clean_objects_restamp


class Command(BaseCommand):
    help = "Store on each older clean S3 object the Content-Disposition it is served with."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"{clean_objects_restamp()} file(s) restamped")
