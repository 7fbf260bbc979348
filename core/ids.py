"""Public ids are UUIDs (DESIGN): a value that is not one can name no object."""

from __future__ import annotations

import uuid
from typing import Any


def is_uuid(value: Any) -> bool:
    """Whether ``value`` is a UUID, or text that spells one. Only text: a JSON number from a
    socket client (``-12345678901234567890123456789012`` reads as 32 hex digits once turned
    into text) is no id, and Django's ``UUIDField`` would refuse it with its own error."""
    if isinstance(value, uuid.UUID):
        return True
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
