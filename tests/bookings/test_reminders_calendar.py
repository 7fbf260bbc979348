"""Reminders exactly once (two real worker processes), calendar feeds, the dashboard."""

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings as dj_settings
from django.db import OperationalError
from django_tasks_db.models import DBTaskResult
from icalendar import Calendar

from bookings.models import Appointment, ReminderDelivery
from bookings.tasks import REMINDER_GRACE, housekeeping, remind, reminders_due, send_reminders
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
    now = datetime.now(UTC)
    soon = _confirmed(doctor_with_hours, patient, now + timedelta(minutes=55))
    assert remind(soon.id, 60, now=now) == "sent"
    assert remind(soon.id, 60, now=now) == "skipped: already sent"
    assert remind(soon.id, 24 * 60, now=now) == "skipped: not due"  # 23 hours late
    assert remind(soon.id, 30, now=now) == "skipped: not due"  # 25 minutes early
    cancelled = _confirmed(doctor_with_hours, make_user(), now + timedelta(minutes=50, days=1))
    cancelled.status = "cancelled"
    cancelled.save()
    assert remind(cancelled.id, 24 * 60, now=now) == "skipped: not confirmed"
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

    closed = _confirmed(doctor(), make_user(), now + timedelta(minutes=57))
    # (closing an account cancels its appointments; an update that bypasses that is still
    # never reminded)
    type(closed.patient).objects.filter(pk=closed.patient_id).update(is_active=False)
    assert remind(closed.id, 60, now=now) == "skipped: a party's account is closed"
    assert not ReminderDelivery.objects.filter(appointment=closed).exists()


def test_a_booking_enqueues_no_task_and_is_reminded_at_each_offset(api, doctor_with_hours):
    """Reminders come from the housekeeping loop's sweep, not from tasks the booking
    enqueues: each offset's reminder is due from its moment for ``REMINDER_GRACE``, once."""
    patient = make_user()
    token = login(api, patient.email)["access"]
    start = next_slot(days=3)
    r = post(
        api,
        "/api/v1/appointments",
        {"doctor_id": str(doctor_with_hours.id), "start": start.isoformat(), "mode": "in_person"},
        **bearer(token),
    )
    assert r.status_code == 201, r.json()
    assert not DBTaskResult.objects.exclude(task_path="realtime.deliveries.send_deliveries")
    a = Appointment.objects.get(patient=patient)
    day, hour = start - timedelta(days=1), start - timedelta(hours=1)
    assert reminders_due(datetime.now(UTC)) == []
    assert reminders_due(day - timedelta(seconds=1)) == []
    assert reminders_due(day) == [(a.id, 24 * 60)]
    assert reminders_due(day + REMINDER_GRACE) == [(a.id, 24 * 60)]
    assert reminders_due(day + REMINDER_GRACE + timedelta(seconds=1)) == []  # dropped, not late
    assert send_reminders(day + timedelta(minutes=1)) == 1
    assert reminders_due(day + timedelta(minutes=2)) == []  # sent: not due again
    assert reminders_due(hour + timedelta(minutes=3)) == [(a.id, 60)]
    assert send_reminders(hour + timedelta(minutes=3)) == 1
    assert reminders_due(start - timedelta(seconds=1)) == []
    assert sorted(ReminderDelivery.objects.values_list("offset_minutes", flat=True)) == [60, 1440]
    assert Notification.objects.filter(kind="booking.reminder").count() == 4


def test_reminders_follow_the_offsets_of_the_day_and_the_life_of_the_appointment(
    doctor_with_hours, settings
):
    """An offset removed from the settings is no longer sent and one added applies to
    appointments already booked; a request or a hold at the moment is not reminded, but is
    once confirmed within the grace; a cancelled, moved or freshly booked one is not."""
    start = datetime.now(UTC) + timedelta(days=5)
    a = _confirmed(doctor_with_hours, make_user(), start)
    Appointment.objects.filter(id=a.id).update(created_at=start - timedelta(days=4))
    day, two_days = start - timedelta(days=1), start - timedelta(days=2)
    settings.REMINDER_OFFSETS_MINUTES = [60]
    assert reminders_due(day) == []
    settings.REMINDER_OFFSETS_MINUTES = [2 * 24 * 60, 24 * 60, 60]
    assert reminders_due(two_days) == [(a.id, 2 * 24 * 60)]
    # booked after the moment: never reminded of what it has just been told
    Appointment.objects.filter(id=a.id).update(created_at=two_days + timedelta(seconds=1))
    assert reminders_due(two_days + timedelta(minutes=1)) == []
    for status in ("pending", "held", "cancelled"):
        Appointment.objects.filter(id=a.id).update(status=status)
        assert reminders_due(day) == [], status
        assert remind(a.id, 24 * 60, now=day) == "skipped: not confirmed"
    Appointment.objects.filter(id=a.id).update(status="confirmed")  # approved or paid late
    assert reminders_due(day + timedelta(minutes=5)) == [(a.id, 24 * 60)]


def test_a_reminder_that_fails_is_sent_by_the_next_run_and_others_go_on(
    doctor_with_hours, monkeypatch
):
    from bookings import services

    now = datetime.now(UTC)
    from tests.doctors.factories import doctor

    first, second = (
        _confirmed(doctor(), make_user(), now + timedelta(minutes=58 - i)) for i in range(2)
    )
    Appointment.objects.update(created_at=now - timedelta(days=1))
    tell_both, calls = services.tell_both, []

    def failing_once(appointment, *args, **kwargs):
        calls.append(appointment.id)
        if len(calls) == 1:
            raise OperationalError("connection lost")
        return tell_both(appointment, *args, **kwargs)

    monkeypatch.setattr(services, "tell_both", failing_once)
    assert send_reminders(now) == 1  # the first failed, rolled back, and did not stop the other
    assert ReminderDelivery.objects.count() == 1
    assert send_reminders(now + timedelta(minutes=1)) == 1  # tried again while due
    assert set(ReminderDelivery.objects.values_list("appointment_id", flat=True)) == {
        first.id,
        second.id,
    }
    assert send_reminders(now + timedelta(minutes=2)) == 0


@pytest.mark.django_db(transaction=True)
def test_two_real_worker_processes_send_each_reminder_once():
    from tests.doctors.factories import doctor

    now = datetime.now(UTC)
    for i in range(6):
        _confirmed(doctor(), make_user(), now + timedelta(minutes=59 - i, seconds=30))
    Appointment.objects.update(created_at=now - timedelta(days=1))
    for _ in range(8):  # sweeps at once, as loops started twice or a slow run would
        housekeeping.enqueue()
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
                "--max-tasks",  # each runs four sweeps (the deliveries they enqueue come after)
                "4",
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
    try:
        for w in workers:
            w.wait(max(1, deadline - time.monotonic()))
    finally:
        for w in workers:
            w.kill()
    assert ReminderDelivery.objects.count() == 6
    assert (
        Notification.objects.filter(kind="booking.reminder").count() == 12
    )  # 6 x (patient + doctor)
    runs = DBTaskResult.objects.filter(task_path="bookings.tasks.housekeeping")
    # Eight chains became one: a run enqueues its next only when none waits.
    assert sorted(runs.values_list("status", flat=True)) == ["READY"] + ["SUCCESSFUL"] * 8
    ran = sorted(w for r in runs.filter(status="SUCCESSFUL") for w in r.worker_ids)
    assert ran == ["w0"] * 4 + ["w1"] * 4
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
        "reminders_sent": 0,
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


@pytest.mark.parametrize(
    "loop", ["bookings.tasks.housekeeping", "realtime.deliveries.deliveries_housekeeping"]
)
def test_a_housekeeping_run_that_fails_keeps_its_loop_going(monkeypatch, caplog, loop):
    """The next run is enqueued before the work, so neither a step that raises nor a worker
    that dies in the middle stops the loop; in bookings' loop the other steps still run."""
    import importlib

    from bookings import services

    module_path, name = loop.rsplit(".", 1)
    task = getattr(importlib.import_module(module_path), name)

    def broken(**kwargs):
        raise OperationalError("server closed the connection")

    monkeypatch.setattr(services, "holds_release", broken)
    monkeypatch.setattr("realtime.deliveries.sending_timeout", lambda: 1 / 0)
    if name == "housekeeping":
        done = task.call()
        assert done["holds_released"] is None and done["keys_purged"] == 0, done
        assert "housekeeping step failed" in caplog.text
    else:
        with pytest.raises(ZeroDivisionError):
            task.call()
    [waiting] = DBTaskResult.objects.filter(task_path=loop, status="READY")
    assert waiting.run_after > datetime.now(UTC)
