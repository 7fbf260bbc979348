"""PostgreSQL values read in C.

Django registers its own ``timestamptz`` loader for psycopg: a Python subclass of psycopg's
Python loader that parses the text and then replaces the time zone with the connection's. That
costs ~10 us a value in Python; a 3-month slot list reads 600 of them, a booking a dozen. When
the connection's time zone is UTC (always, with ``USE_TZ`` and ``TIME_ZONE = "UTC"``: Django
sets the session's ``TimeZone`` to it), psycopg's C loader returns the same aware UTC datetimes
(its zone comes from the session's ``TimeZone``, ``datetime.timezone.utc`` for ``UTC``).
:func:`use_c_timestamptz_loader` puts it in the adapters template Django hands every new
connection. Without psycopg's C extension, or another connection time zone, nothing changes.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any


def use_c_timestamptz_loader() -> bool:
    """Register the C loader for ``timestamptz`` in Django's adapters template (before the
    first connection: a connection copies the template when it opens). True if it did."""
    from django.db import connections

    if not any(c.vendor == "postgresql" and c.timezone is UTC for c in connections.all()):
        return False
    try:
        from django.db.backends.postgresql.psycopg_any import get_adapters_template
        from psycopg import _cmodule
    except ImportError:
        return False
    native = getattr(_cmodule._psycopg, "TimestamptzLoader", None) if _cmodule._psycopg else None
    if native is None:
        return False
    get_adapters_template(True, UTC).register_loader("timestamptz", _factory(native))
    return True


def _factory(native: Any) -> Any:
    """A loader "class" that psycopg instantiates per cursor and that makes the C loader. (The
    C class cannot be subclassed, and Django reads ``timezone`` from the registered class on
    every cursor, registering its own loader where it differs from the connection's.)"""

    class UTCTimestamptzLoader:
        format = native.format
        timezone = UTC

        def __new__(cls, oid: int, context: Any = None) -> Any:
            return native(oid, context)

    return UTCTimestamptzLoader
