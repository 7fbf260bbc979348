"""Compile the project's ``.po`` catalogues to ``.mo`` with polib (pure Python).

Django's ``compilemessages`` needs GNU gettext's ``msgfmt``; this needs nothing but the
lock file, so ``make run`` works on a machine with only Python.
"""

from __future__ import annotations

from typing import Any

import polib
from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Compile locale/*/LC_MESSAGES/*.po to .mo without GNU gettext."

    def handle(self, *args: Any, **options: Any) -> None:
        count = 0
        for base in settings.LOCALE_PATHS:
            for po_path in sorted(base.glob("*/LC_MESSAGES/*.po")):
                catalogue = polib.pofile(str(po_path))
                mo_path = po_path.with_suffix(".mo")
                if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
                    continue
                catalogue.save_as_mofile(str(mo_path))
                count += 1
                self.stdout.write(f"compiled {po_path.relative_to(settings.BASE_DIR)}")
        if not count:
            self.stdout.write("catalogues up to date")
