"""Secrets that travel in URLs never reach the logs, whichever logger writes the URL.

Our access log names the route, not the path; but Django's ``django.request`` logger
("Internal Server Error: <path>", with the request itself in the record), the development
servers and any library that logs a URL do not. :class:`RedactSecretsFilter` rewrites such
records before any handler sees them (settings attach it to the handlers and to the
loggers that write paths).

Query strings are redacted whole: they carry search text, a home address (``near=``), an
e-mail searched for in the admin. A record's ``request`` (Django passes it to the
``django.request`` and ``django.security`` loggers, and its repr is the full URL) becomes
its method and path.
"""

from __future__ import annotations

import logging
import re

from django.http import HttpRequest

REDACTED = "[redacted]"

SECRET_PATHS = (
    # A calendar feed's token is the feed's only credential (calendar apps send no headers).
    re.compile(r"(?<=/calendar/)[^/?#\s'\"<>]+(?=\.ics)"),
    # A medical file's signed download link is its own credential for a few minutes.
    re.compile(r"(?<=/records/files/)[^/?#\s'\"<>]+"),
)

# The query string of a path or URL: "/api/v1/doctors?near=..." -> "/api/v1/doctors?[redacted]".
QUERY = re.compile(r"(/[^\s?#'\"<>]*\?)[^\s#'\"<>]+")

_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def redact(text: str) -> str:
    for pattern in SECRET_PATHS:
        text = pattern.sub(REDACTED, text)
    return QUERY.sub(lambda m: m.group(1) + REDACTED, text)


def _holds_secret(value: object) -> bool:
    if value is None or isinstance(value, int | float | bool):
        return False
    try:
        texts = {str(value), repr(value)}
    except Exception:  # an object that cannot say itself says no secret either
        return False
    return any(redact(text) != text for text in texts)


class RedactSecretsFilter(logging.Filter):
    """Redacts the message (once formatted with its arguments), the traceback, the stack and
    every extra of a record; a request becomes its method and path. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        if isinstance(request, HttpRequest):  # its repr is the whole URL, query included
            record.request = redact(f"{request.method} {request.path}")
        try:
            message = record.getMessage()
        except Exception:  # a bad format: the handler reports it as usual
            message = None
        if message is not None and redact(message) != message:
            record.msg, record.args = redact(message), ()
        for key, value in list(record.__dict__.items()):
            if key not in _RESERVED and _holds_secret(value):
                setattr(record, key, redact(str(value)))  # a request: its redacted repr
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        if record.exc_info and record.exc_info[0] is not None:
            text = record.exc_text or logging.Formatter().formatException(record.exc_info)
            if redact(text) != text:
                # Formatters format exc_info afresh: keep only the redacted text (``exc``
                # is where the JSON formatter puts a traceback).
                record.exc_info, record.exc_text = None, redact(text)
                record.exc = record.exc_text
        return True


class AsWarningFilter(logging.Filter):
    """Records of this logger go out as warnings: for what a client caused and the server
    can do nothing about, which Django logs as errors (a request for a host not in
    ``ALLOWED_HOSTS``: every scanner that finds the server's address sends them, and an
    alert on errors would fire all day). Still logged, so a wrong ``ALLOWED_HOSTS`` shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True
