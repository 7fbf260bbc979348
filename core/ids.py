"""Public ids are UUIDs (DESIGN): a value that is not one can name no object."""

from __future__ import annotations

import uuid
from typing import Any


def is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
