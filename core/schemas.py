"""Input types shared by every app's Ninja schemas."""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Annotated, Any

from django.utils.translation import gettext as _
from ninja import Schema
from pydantic import BeforeValidator, ConfigDict, Field


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


IsoDatetime = Annotated[datetime, BeforeValidator(_iso_datetime)]

TIME_ZONES = sorted(zoneinfo.available_timezones())


def _time_zone(value: Any) -> Any:
    if value is not None and (
        not isinstance(value, str) or value not in zoneinfo.available_timezones()
    ):
        raise ValueError(_("Unknown time zone."))
    return value


TimeZoneName = Annotated[
    str, BeforeValidator(_time_zone), Field(json_schema_extra={"enum": TIME_ZONES})
]
