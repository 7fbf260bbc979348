"""The secret calendar feed and the .ics files: what a calendar app is given, and what the
server keeps and logs of the feed's secret."""

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone
from icalendar import Calendar

from bookings import calendar
from bookings.models import Appointment, CalendarFeed
from core.logs import RedactSecretsFilter
from telemed.logging import JsonFormatter
from tests.bookings.conftest import next_slot
from tests.factories import bearer, login, make_user, post

pytestmark = pytest.mark.django_db


def _appointment(doctor, patient, start, status="confirmed", minutes=30):
    return Appointment.objects.create(
        doctor=doctor,
        patient=patient,
        mode="video",
        status=status,
        start=start,
        end=start + timedelta(minutes=minutes),
    )


def _events(response) -> dict[str, dict]:
    assert response.status_code == 200, response.status_code
    return {
        str(e["uid"]).removesuffix("@telemed"): e
        for e in Calendar.from_ical(response.content).walk("VEVENT")
    }


def _feed_path(user) -> str:
    return f"/calendar/{calendar.feed_token_rotate(user=user)}.ics"


@pytest.mark.parametrize(
    "token",
    [
        "%00abc",
        "%00" + "a" * 42,
        "a" * 42 + "%0A",  # a trailing newline: `$` would have let it through
        "a" * 42,
        "a" * 44,
        "a" * 42 + "!",
        "a" * 42 + "%C3%A9",
        "",
    ],
)
def test_a_token_not_of_our_shape_is_404_without_the_database(
    api, token, django_assert_num_queries
):
    with django_assert_num_queries(0):
        assert api.get(f"/calendar/{token}.ics").status_code == 404


def test_an_unknown_token_of_our_shape_is_404_in_one_query(api, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert api.get(f"/calendar/{'A' * 43}.ics").status_code == 404


def test_a_500_under_the_feed_url_logs_no_token(doctor_with_hours, caplog, monkeypatch):
    patient = make_user()
    _appointment(doctor_with_hours, patient, next_slot())
    path = _feed_path(patient)
    token = path.removeprefix("/calendar/").removesuffix(".ics")

    def broken(*args, **kwargs):
        raise RuntimeError(f"cannot render {path}")  # even an exception that names the URL

    monkeypatch.setattr(calendar, "render", broken)
    caplog.set_level(logging.INFO)
    assert Client(raise_request_exception=False).get(path).status_code == 500
    [error] = [r for r in caplog.records if r.name == "django.request"]
    assert error.getMessage() == "Internal Server Error: /calendar/[redacted].ics"
    assert "RuntimeError: cannot render /calendar/[redacted].ics" in caplog.text
    assert token not in caplog.text
    for record in caplog.records:
        assert token not in JsonFormatter().format(record)  # the request extra included
        assert token not in logging.Formatter("%(message)s").format(record)


def test_any_logger_writing_a_feed_url_reaches_the_console_redacted(caplog):
    """A logger with no filter of its own (a library's) is redacted by the handler."""
    token = "b" * 43
    caplog.set_level(logging.INFO)
    logging.getLogger("some.library").info("GET %s 200", f"/calendar/{token}.ics?x=1")
    [record] = [r for r in caplog.records if r.name == "some.library"]
    console = [
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, RedactSecretsFilter) for f in h.filters)
    ]
    assert console, "no root handler redacts secrets"
    assert console[0].filter(record)
    assert record.getMessage() == "GET /calendar/[redacted].ics?[redacted] 200"
    other = logging.makeLogRecord({"msg": "POST /api/v1/calendar/feed 200"})
    assert RedactSecretsFilter().filter(other)
    assert other.getMessage() == "POST /api/v1/calendar/feed 200"  # no secret there


def test_tokens_are_stored_as_digests_and_rotation_revokes(api, doctor_with_hours):
    patient = make_user()
    appointment = _appointment(doctor_with_hours, patient, next_slot())
    headers = bearer(login(api, patient.email)["access"])
    url = post(api, "/api/v1/calendar/feed", **headers).json()["url"]
    path = url.split("testserver")[1]
    token = path.removeprefix("/calendar/").removesuffix(".ics")
    feed = CalendarFeed.objects.get(user=patient)
    assert feed.token_digest == hashlib.sha256(token.encode()).hexdigest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM bookings_calendarfeed")
        assert token not in repr(cursor.fetchall())
    assert list(_events(api.get(path))) == [str(appointment.id)]
    new_path = post(api, "/api/v1/calendar/feed", **headers).json()["url"].split("testserver")[1]
    assert api.get(path).status_code == 404  # the old URL is revoked
    assert api.get(new_path).status_code == 200
    assert CalendarFeed.objects.filter(user=patient).count() == 1
    # each new URL is audited, from where, never with its secret
    from audit.models import AuditEvent

    events = list(AuditEvent.objects.filter(action="calendar.feed_rotated").order_by("id"))
    assert [(e.target_id, e.data["first"]) for e in events] == [
        (str(patient.pk), True),
        (str(patient.pk), False),
    ]
    assert all(e.ip and token not in json.dumps(e.data) for e in events)


@pytest.mark.django_db(transaction=True)  # migrating back and forth: schema changes on rows
def test_the_urls_subscribed_before_digests_keep_working(api, doctor_with_hours):
    from django.db.migrations.executor import MigrationExecutor

    patient = make_user()
    appointment = _appointment(doctor_with_hours, patient, next_slot())
    token = "Z" * 21 + "_-" + "0" * 20  # as secrets.token_urlsafe(32) made them
    try:
        call_command("migrate", "bookings", "0008", verbosity=0)
        then = MigrationExecutor(connection).loader.project_state(
            ("bookings", "0008_reminder_sweep_index")
        )
        then.apps.get_model("bookings", "CalendarFeed").objects.create(
            user_id=patient.pk, token=token
        )
    finally:
        call_command("migrate", "bookings", verbosity=0)
    assert CalendarFeed.objects.get().token_digest == hashlib.sha256(token.encode()).hexdigest()
    assert list(_events(api.get(f"/calendar/{token}.ics"))) == [str(appointment.id)]


def test_a_cancellation_raises_the_sequence(api, doctor_with_hours):
    patient = make_user()
    appointment = _appointment(doctor_with_hours, patient, next_slot())
    booked = timezone.now() - timedelta(hours=1)
    Appointment.objects.filter(pk=appointment.pk).update(created_at=booked, updated_at=booked)
    path = _feed_path(patient)
    before = _events(api.get(path))[str(appointment.id)]
    assert before["sequence"] == 0 and str(before["status"]) == "CONFIRMED"
    assert before["dtstamp"].dt == booked.replace(microsecond=0)
    assert b"DTSTAMP:" + booked.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ").encode() in (
        api.get(path).content
    )  # in UTC, as RFC 5545 asks

    headers = bearer(login(api, doctor_with_hours.user.email)["access"])
    r = post(api, f"/api/v1/appointments/{appointment.id}/cancel", {"reason": "ill"}, **headers)
    assert r.status_code == 200, r.json()
    after = _events(api.get(path))[str(appointment.id)]
    assert str(after["status"]) == "CANCELLED"
    assert after["sequence"] >= 3600 > before["sequence"]
    assert after["dtstamp"].dt > before["dtstamp"].dt
    assert after["last-modified"].dt == after["dtstamp"].dt
    # the one-appointment file says the same
    one = api.get(f"/api/v1/appointments/{appointment.id}/ics", headers=headers)
    assert _events(one)[str(appointment.id)]["sequence"] == after["sequence"]


def test_the_feed_keeps_the_appointments_nearest_to_now(
    api, doctor_with_hours, settings, django_assert_num_queries
):
    patient = make_user()
    now = datetime.now(UTC)
    days = timedelta(days=1)
    at = {
        "last year": now - 365 * days,
        "last month": now - 30 * days,
        "yesterday": now - days,
        "in progress": now - timedelta(minutes=10),
        "tomorrow": now + days,
        "next month": now + 30 * days,
        "next year": now + 365 * days,
    }
    ids = {}
    for name, start in at.items():
        status = "completed" if start < now - timedelta(hours=1) else "confirmed"
        ids[name] = str(_appointment(doctor_with_hours, patient, start, status).id)
    path = _feed_path(patient)

    def feed(limit: int, queries: int) -> set[str]:
        settings.CALENDAR_FEED_LIMIT = limit
        with django_assert_num_queries(queries):  # the feed, the upcoming, the past
            events = _events(api.get(path))
        return {name for name, i in ids.items() if i in events}

    assert feed(2, queries=2) == {"in progress", "tomorrow"}
    assert feed(4, queries=2) == {"in progress", "tomorrow", "next month", "next year"}
    assert feed(6, queries=3) == {*feed(4, queries=2), "yesterday", "last month"}
    assert feed(500, queries=3) == set(ids)


def test_head_on_the_feed_is_answered(api, doctor_with_hours):
    patient = make_user()
    _appointment(doctor_with_hours, patient, next_slot())
    r = api.head(_feed_path(patient))
    assert r.status_code == 200 and r["Content-Type"].startswith("text/calendar")
    assert r.content == b""
    assert api.post(_feed_path(patient)).status_code == 405


def test_the_ics_file_speaks_the_request_language(api, doctor_with_hours):
    patient = make_user()
    assert patient.language == "en"
    appointment = _appointment(doctor_with_hours, patient, next_slot())
    headers = bearer(login(api, patient.email)["access"])
    path = f"/api/v1/appointments/{appointment.id}/ics"

    def summary(**extra: str) -> str:
        [event] = _events(api.get(path, headers={**headers, **extra})).values()
        return str(event["summary"])

    assert "(فيديو)" in summary(**{"Accept-Language": "ar"})
    assert "(Video)" in summary()  # no language asked: the saved one
    patient.language = "ar"
    patient.save()
    assert "(فيديو)" in summary()
    assert "(Video)" in summary(**{"Accept-Language": "en"})
    # the feed speaks its owner's language, whatever the calendar app asks for
    [event] = _events(api.get(_feed_path(patient), headers={"Accept-Language": "en"})).values()
    assert "(فيديو)" in str(event["summary"])


def test_ended_appointments_stay_in_the_feed_with_their_outcome(api, doctor_with_hours):
    patient = make_user()
    start = next_slot()
    statuses = ["held", "pending", "confirmed", "completed", "no_show", "cancelled", "rejected"]
    ids = {
        status: str(
            _appointment(doctor_with_hours, patient, start + i * timedelta(hours=1), status).id
        )
        for i, status in enumerate(statuses)
    }
    events = _events(api.get(_feed_path(patient)))
    assert {s: str(events[i]["status"]) for s, i in ids.items()} == {
        "held": "TENTATIVE",
        "pending": "TENTATIVE",
        "confirmed": "CONFIRMED",
        "completed": "CONFIRMED",
        "no_show": "CONFIRMED",
        "cancelled": "CANCELLED",
        "rejected": "CANCELLED",
    }
    # the doctor's feed too
    assert set(_events(api.get(_feed_path(doctor_with_hours.user)))) == set(ids.values())


def test_a_feed_url_logged_as_json_is_redacted_in_every_part():
    token = "c" * 43
    path = f"/calendar/{token}.ics"

    class Request:
        def __repr__(self) -> str:
            return f"<ASGIRequest: GET '{path}'>"

    try:
        raise ValueError(path)
    except ValueError:
        import sys

        record = logging.makeLogRecord(
            {
                "name": "x",
                "msg": "%s at %s",
                "args": ("boom", path),
                "request": Request(),
                "exc_info": sys.exc_info(),
                "status_code": 500,
            }
        )
    assert RedactSecretsFilter().filter(record)
    line = json.loads(JsonFormatter().format(record))
    assert token not in json.dumps(line)
    assert line["msg"] == "boom at /calendar/[redacted].ics"
    assert line["request"] == "<ASGIRequest: GET '/calendar/[redacted].ics'>"
    assert "ValueError: /calendar/[redacted].ics" in line["exc"]
    assert line["status_code"] == 500
    assert "ValueError: /calendar/[redacted].ics" in logging.Formatter().format(record)


def test_closing_an_account_revokes_its_feed_for_good(api):
    from accounts.services import user_set_active

    patient = make_user()
    path = _feed_path(patient)
    assert api.get(path).status_code == 200
    admin = make_user(role="admin")
    user_set_active(actor=admin, user=patient, active=False)
    user_set_active(actor=admin, user=patient, active=True)  # reopened: the old URL stays dead
    assert api.get(path).status_code == 404
    assert not CalendarFeed.objects.filter(user=patient).exists()
