"""A ticket in a logged path is redacted, and the record is still logged as its format says:
the other arguments keep their types, and arguments given by name stay a mapping."""

from __future__ import annotations

import logging

from realtime.tickets import RedactTickets


def redacted(msg: str, *args: object) -> logging.LogRecord:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, msg, args, None)
    assert RedactTickets().filter(record)
    return record


def test_an_access_line_with_a_number_is_logged_with_the_ticket_redacted():
    record = redacted(
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4", 5),
        "GET",
        "/ws/v1/?ticket=SECRET&lang=ar",
        "1.1",
        404,
    )
    assert record.getMessage() == (
        "('1.2.3.4', 5) - \"GET /ws/v1/?ticket=[redacted]&lang=ar HTTP/1.1\" 404"
    )
    assert isinstance(record.args, tuple)
    assert record.args[0] == ("1.2.3.4", 5) and record.args[4] == 404


def test_arguments_given_by_name_stay_a_mapping():
    record = redacted(
        "%(path)s answered %(status)d", {"path": "/ws/v1/?ticket=SECRET", "status": 101}
    )
    assert record.args == {"path": "/ws/v1/?ticket=[redacted]", "status": 101}
    assert record.getMessage() == "/ws/v1/?ticket=[redacted] answered 101"


def test_a_ticket_in_a_value_that_is_not_text_is_redacted_too():
    record = redacted("%s %s", b"/ws/v1/?ticket=SECRET", "GET")
    assert "SECRET" not in record.getMessage()
    assert record.args == ("b'/ws/v1/?ticket=[redacted]'", "GET")


def test_a_record_without_a_ticket_is_left_as_it_is():
    record = redacted("%s %d", "/ws/v1/", 7)
    assert record.args == ("/ws/v1/", 7)
