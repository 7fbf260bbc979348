"""Reminders exactly once (two real worker processes), calendar feeds, the dashboard."""

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings as dj_settings
from django_tasks_db.models import DBTaskResult
from icalendar import Calendar

from bookings.models import Appointment, ReminderDelivery
from bookings.tasks import send_reminder
from realtime.models import Notification
from tests.bookings.conftest import next_slot
from tests.factories import bearer, login, make_user, post
from tests.procs import ROOT

pytestmark = pytest.mark.django_db


def _confirmed(doctor, patient, start):
    return Appointment.objects.create(
        doctor=doctor,
        patient=patient,
        mode="video",
        status="confirmed",
        start=start,
        end=start + timedelta(minutes=30),
    )


def test_reminder_is_sent_once_and_never_late_or_for_cancelled(doctor_with_hours):
    patient = make_user()
    soon = _confirmed(doctor_with_hours, patient, datetime.now(UTC) + timedelta(minutes=55))
    assert send_reminder.call(str(soon.id), 60) == "sent"
    assert send_reminder.call(str(soon.id), 60) == "skipped: already sent"
    assert send_reminder.call(str(soon.id), 24 * 60) == "skipped: past due"
    cancelled = _confirmed(
        doctor_with_hours, make_user(), datetime.now(UTC) + timedelta(minutes=50, days=1)
    )
    cancelled.status = "cancelled"
    cancelled.save()
    assert send_reminder.call(str(cancelled.id), 24 * 60) == "skipped: not confirmed"
    assert (
        Notification.objects.filter(kind="booking.reminder").count() == 2
    )  # patient and doctor, once
    assert ReminderDelivery.objects.count() == 1
    # told in the appointment's zone (the clinic's, or for video the doctor's profile zone),
    # named: the patient's own profile zone is UTC until they set one
    reminder = Notification.objects.filter(kind="booking.reminder", user=patient).get()
    local = soon.start.astimezone(ZoneInfo(doctor_with_hours.time_zone))
    assert f"{local:%Y-%m-%d %H:%M} ({doctor_with_hours.time_zone})" in reminder.body
    # nobody is reminded of an appointment with a party whose account is closed
    from tests.doctors.factories import doctor

    closed = _confirmed(doctor(), make_user(), datetime.now(UTC) + timedelta(minutes=57))
    # (closing an account cancels its appointments; an update that bypasses that is still
    # never reminded)
    type(closed.patient).objects.filter(pk=closed.patient_id).update(is_active=False)
    assert send_reminder.call(str(closed.id), 60) == "skipped: a party's account is closed"
    assert not ReminderDelivery.objects.filter(appointment=closed).exists()


def test_booking_schedules_reminders_in_its_transaction(api, doctor_with_hours):
    patient = make_user()
    token = login(api, patient.email)["access"]
    start = next_slot(days=3)
    post(
        api,
        "/api/v1/appointments",
        {"doctor_id": str(doctor_with_hours.id), "start": start.isoformat(), "mode": "in_person"},
        **bearer(token),
    )

    def due() -> list:
        return sorted(
            DBTaskResult.objects.filter(task_path="bookings.tasks.send_reminder").values_list(
                "run_after", flat=True
            )
        )

    # One task at a time: the first reminder; sending it enqueues the next.
    assert due() == [start - timedelta(days=1)]
    [appointment] = Appointment.objects.filter(patient=patient)
    assert send_reminder.call(str(appointment.id), 24 * 60) == "sent"
    assert due() == [start - timedelta(days=1), start - timedelta(hours=1)]
    assert send_reminder.call(str(appointment.id), 60) == "sent"
    assert len(due()) == 2  # the last one enqueues nothing


def test_a_request_approved_late_still_gets_its_later_reminders(doctor_with_hours):
    """A reminder that finds the appointment still a request skips, but keeps the chain: the
    next offset comes; a cancelled appointment ends it."""
    start = datetime.now(UTC) + timedelta(hours=30)
    pending = _confirmed(doctor_with_hours, make_user(), start)
    Appointment.objects.filter(id=pending.id).update(status="pending")
    assert send_reminder.call(str(pending.id), 24 * 60) == "skipped: not confirmed"
    [next_one] = DBTaskResult.objects.filter(task_path="bookings.tasks.send_reminder")
    assert next_one.args_kwargs["args"] == [str(pending.id), 60]
    Appointment.objects.filter(id=pending.id).update(status="cancelled")
    assert send_reminder.call(str(pending.id), 60) == "skipped: not confirmed"
    assert DBTaskResult.objects.filter(task_path="bookings.tasks.send_reminder").count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_real_worker_processes_send_each_reminder_once(doctor_with_hours):
    appointments = [
        _confirmed(
            doctor_with_hours, make_user(), datetime.now(UTC) + timedelta(minutes=58 + 31 * i)
        )
        for i in range(6)
    ]
    for a in appointments:  # each reminder enqueued twice, as a retry or a double schedule would
        send_reminder.enqueue(str(a.id), 60)
        send_reminder.enqueue(str(a.id), 60)
    db = dj_settings.DATABASES["default"]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
    }
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "db_worker",
                "--batch",
                "--interval",
                "0",
                "--no-startup-delay",
                "--worker-id",
                f"w{i}",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 60
    for w in workers:
        w.wait(max(1, deadline - time.monotonic()))
    assert ReminderDelivery.objects.count() == 6
    assert (
        Notification.objects.filter(kind="booking.reminder").count() == 12
    )  # 6 x (patient + doctor)
    assert set(DBTaskResult.objects.values_list("status", flat=True)) == {"SUCCESSFUL"}
    assert [w.returncode for w in workers] == [0, 0]


def test_calendar_feed_and_rotation(api, doctor_with_hours):
    patient = make_user()
    appt = _confirmed(doctor_with_hours, patient, next_slot())
    headers = bearer(login(api, patient.email)["access"])
    url = post(api, "/api/v1/calendar/feed", **headers).json()["url"]
    path = url.split("testserver")[1]
    r = api.get(path)
    assert r.status_code == 200 and r["Content-Type"].startswith("text/calendar")
    events = [c for c in Calendar.from_ical(r.content).walk("VEVENT")]
    assert [str(e["uid"]) for e in events] == [f"{appt.id}@telemed"]
    assert "reason" not in r.content.decode().lower()
    new_url = post(api, "/api/v1/calendar/feed", **headers).json()["url"]
    assert api.get(path).status_code == 404  # the old URL is revoked
    assert api.get(new_url.split("testserver")[1]).status_code == 200
    one = api.get(f"/api/v1/appointments/{appt.id}/ics", headers=headers)
    assert one.status_code == 200 and b"BEGIN:VEVENT" in one.content
    # a calendar app sends no language: the feed speaks its owner's
    patient.language = "ar"
    patient.save()
    r = api.get(new_url.split("testserver")[1])
    [event] = Calendar.from_ical(r.content).walk("VEVENT")
    assert "(فيديو)" in str(event["summary"]), str(event["summary"])


def test_dashboards(api, doctor_with_hours):
    patient = make_user()
    start = next_slot(days=2)
    first = _confirmed(doctor_with_hours, patient, start)
    mine = api.get("/api/v1/dashboard", headers=bearer(login(api, patient.email)["access"])).json()
    assert mine["role"] == "patient" and len(mine["next"]) == 1
    doc = api.get(
        "/api/v1/dashboard", headers=bearer(login(api, doctor_with_hours.user.email)["access"])
    ).json()
    assert doc["pending_requests"] == 0
    assert set(doc["week"]) == {"confirmed", "completed", "no_show", "cancelled"}

    # the doctor's day is counted in their clinic's zone (Cairo), not their account's (UTC):
    # at 22:30 UTC it is already tomorrow in Cairo
    from zoneinfo import ZoneInfo

    from bookings.selectors import dashboard

    cairo = ZoneInfo("Africa/Cairo")
    tomorrow_8 = datetime.combine(start.astimezone(cairo).date(), datetime.min.time(), cairo)
    tomorrow_8 += timedelta(hours=8)
    late_evening = (tomorrow_8 - timedelta(hours=8)).astimezone(UTC) + timedelta(minutes=30)
    early = _confirmed(doctor_with_hours, make_user(), tomorrow_8.astimezone(UTC))
    assert doctor_with_hours.user.time_zone == "UTC"
    today = dashboard(viewer=doctor_with_hours.user, now=late_evening)["today"]
    assert [a.id for a in today] == [early.id, first.id]


def test_housekeeping_releases_expired_holds_and_completes_unmarked(doctor_with_hours):
    from bookings.tasks import housekeeping
    from core.tasks import ensure_housekeeping

    now = datetime.now(UTC)
    held = Appointment.objects.create(
        doctor=doctor_with_hours,
        patient=make_user(),
        mode="video",
        status="held",
        start=now + timedelta(days=1),
        end=now + timedelta(days=1, minutes=30),
        hold_expires_at=now - timedelta(minutes=1),
    )
    fresh_hold = Appointment.objects.create(
        doctor=doctor_with_hours,
        patient=make_user(),
        mode="video",
        status="held",
        start=now + timedelta(days=2),
        end=now + timedelta(days=2, minutes=30),
        hold_expires_at=now + timedelta(minutes=10),
    )
    old = Appointment.objects.create(
        doctor=doctor_with_hours,
        patient=make_user(),
        mode="video",
        status="confirmed",
        start=now - timedelta(hours=9),
        end=now - timedelta(hours=8, minutes=30),
    )
    from core.models import IdempotencyRecord

    patient = make_user()
    stale_key = IdempotencyRecord.objects.create(user=patient, key="old", request_hash="x")
    IdempotencyRecord.objects.filter(pk=stale_key.pk).update(created_at=now - timedelta(hours=25))
    IdempotencyRecord.objects.create(user=patient, key="new", request_hash="x")
    assert housekeeping.call() == {
        "holds_released": 1,
        "requests_lapsed": 0,
        "auto_completed": 1,
        "keys_purged": 1,
    }
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
    statuses = dict(Appointment.objects.values_list("id", "status"))
    assert (statuses[held.id], statuses[fresh_hold.id], statuses[old.id]) == (
        "cancelled",
        "held",
        "completed",
    )
    # The run above scheduled the next one already.
    assert ensure_housekeeping()["bookings.tasks.housekeeping"] is False
