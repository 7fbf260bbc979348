"""Input types shared by every app's Ninja schemas."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, date, datetime, time
from typing import Annotated, Any

from django.utils.translation import gettext as _
from ninja import Schema
from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field


class InputSchema(Schema):
    """A request body: unknown fields are refused (422), not silently dropped."""

    model_config = ConfigDict(extra="forbid")


def _iso_datetime(value: Any) -> Any:
    """Only ISO 8601 text: pydantic would otherwise take ``0.5`` for a Unix time."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or "T" not in value.upper():
        raise ValueError(_("Enter a valid date or time."))
    return value


def _iso_date(value: Any) -> Any:
    """Only ``YYYY-MM-DD`` text: pydantic would otherwise take ``0`` for 1970-01-01."""
    if isinstance(value, date) or (isinstance(value, str) and len(value) == 10):
        return value
    raise ValueError(_("Enter a valid date."))


# Dates and instants far from today are refused at the edge: the calendar arithmetic of
# slots, windows and time zones (a day either side) must never reach year 1 or 9999.
YEARS = (1900, 2199)


def _in_years(value: Any) -> Any:
    if not YEARS[0] <= value.year <= YEARS[1]:
        raise ValueError(
            _("Enter a date between the years %(first)s and %(last)s.")
            % {"first": YEARS[0], "last": YEARS[1]}
        )
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date), AfterValidator(_in_years)]


def _to_utc(value: datetime) -> datetime:
    """Instants carry an offset (DESIGN: aware datetimes only) and are kept in UTC; PostgreSQL
    refuses offsets beyond ±15:59 that ISO 8601 allows."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(_("Include a time zone offset, e.g. 2026-05-01T09:00:00+03:00."))
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(_("Enter a valid date or time.")) from exc


IsoDatetime = Annotated[
    datetime,
    BeforeValidator(_iso_datetime),
    AfterValidator(_to_utc),
    AfterValidator(_in_years),
]

# Seconds, when written, are zero: hours are counted in whole minutes (slot lengths and
# buffers are minutes), and 20:00:30-20:30 passed as a 30-minute span that offered no slot.
_WALL_TIME = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9](:00)?")


def _wall_time(value: Any) -> Any:
    """Only ``HH:MM`` (or ``HH:MM:00``) text: a time of day in a zone given elsewhere (a
    clinic's). Pydantic would otherwise take ``32400`` for 09:00 or keep an offset nobody
    applies."""
    if isinstance(value, time) and value.tzinfo is None:
        return value
    if not isinstance(value, str) or not _WALL_TIME.fullmatch(value):
        raise ValueError(_("Enter a time of day as HH:MM, without a time zone."))
    return value


WallTime = Annotated[time, BeforeValidator(_wall_time)]


def _wall_end(value: Any) -> Any:
    """As :data:`WallTime`, and ``24:00``: the midnight that ends the day, kept as 00:00
    (an end of 00:00 is that midnight too, never the one that starts the day)."""
    if isinstance(value, str) and value in ("24:00", "24:00:00"):
        return time(0)
    return _wall_time(value)


WallEnd = Annotated[time, BeforeValidator(_wall_end)]

# Strict: JSON true/false must not pass for a number (pydantic's lax mode would take it).
Latitude = Annotated[float, Field(ge=-90, le=90, strict=True)]
Longitude = Annotated[float, Field(ge=-180, le=180, strict=True)]

# The IANA zones of places. Not "localtime" (a link to the host's own zone: slot instants
# would depend on the machine that computes them, and a host without the file answers 500),
# nor the placeholders "Factory" and "posixrules". Read once: the lookup scans the disk.
TIME_ZONE_NAMES = frozenset(zoneinfo.available_timezones()) - {"localtime", "Factory", "posixrules"}
TIME_ZONES = sorted(TIME_ZONE_NAMES)


def _time_zone(value: Any) -> Any:
    if value is not None and (not isinstance(value, str) or value not in TIME_ZONE_NAMES):
        raise ValueError(_("Unknown time zone."))
    return value


TimeZoneName = Annotated[
    str, BeforeValidator(_time_zone), Field(json_schema_extra={"enum": TIME_ZONES})
]
