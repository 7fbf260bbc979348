"""Text that cannot be stored, refused at the edge: by the JSON parser of the API for every
body and query string, and by the endpoints that read a form themselves (an upload)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from core.errors import InvalidRequest


def refuse_unstorable_text(value: Any, field: str = "body") -> None:
    """PostgreSQL text cannot hold NUL characters, and no text can be stored that is not
    UTF-8 (a lone surrogate is valid JSON): refuse both at the edge, 422, naming the
    top-level field that holds them."""
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidRequest(fields={field: _("Text must not contain NUL characters.")})
        try:
            value.encode()
        except UnicodeEncodeError:
            raise InvalidRequest(
                fields={field: _("Remove the characters that cannot be stored from this text.")}
            ) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            name = key if field == "body" and isinstance(key, str) and key.isidentifier() else field
            refuse_unstorable_text(key, field)
            refuse_unstorable_text(item, name)
    elif isinstance(value, list):
        for item in value:
            refuse_unstorable_text(item, field)
