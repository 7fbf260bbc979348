"""``manage.py audit_verify``: walk the audit hash chain; exit status 1 when it is broken."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from audit.selectors import chain_check


class Command(BaseCommand):
    help = "Verify the audit trail's hash chain; exits with status 1 at the first broken link."

    def handle(self, *args: Any, **options: Any) -> None:
        result = chain_check()
        if not result.ok:
            raise CommandError(
                f"audit chain BROKEN at event id {result.first_broken_id} ({result.reason}; "
                f"{result.checked} events read)",
                returncode=1,
            )
        self.stdout.write(f"audit chain OK: {result.checked} events")
