"""The language a request asks for: one rule for REST, sockets and the edge's 413."""

from __future__ import annotations

from django.utils import translation
from django.utils.translation.trans_real import parse_accept_lang_header


def asked_language(accept: str) -> str | None:
    """The language we speak that an ``Accept-Language`` header prefers (highest q-value
    first), or ``None`` when it names none (absent, ``*``, only languages we do not speak):
    the caller then answers in the user's saved language, or the default."""
    for tag, _q in parse_accept_lang_header(accept or ""):
        if tag == "*":
            break  # anything will do, from here on: as LocaleMiddleware reads it
        try:
            return translation.get_supported_language_variant(tag)
        except LookupError:
            continue
    return None
