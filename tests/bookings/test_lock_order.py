"""Transactions that change appointments in bulk and the requests running beside them take
their locks in one order: no deadlock, and so no error, whoever comes first."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections
from django.test import Client

from bookings import services
from bookings.models import Appointment
from bookings.tasks import housekeeping
from tests.bookings.conftest import next_slot
from tests.factories import bearer, login, make_user, post


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("second", ["lapsed request", "expired hold"])
def test_housekeeping_and_a_cancel_beside_it_both_succeed(doctor_with_hours, monkeypatch, second):
    """Housekeeping tells the parties of an expired hold (patient 1 and the doctor) and then
    those of a lapsed request or another expired hold (patient 2 and the doctor); meanwhile
    the doctor cancels another appointment of patient 2, whose notification locks patient
    2's and the doctor's event counters. Taken one notification at a time, housekeeping's
    locks came in an order that deadlocked with the cancel's (PostgreSQL ended the cancel:
    a 500)."""
    d = doctor_with_hours
    now = datetime.now(UTC)
    q1, q2 = make_user(), make_user()
    while str(q2.pk) >= str(d.user_id):  # patient 2's counter comes before the doctor's
        q2 = make_user()
    common = {"doctor": d, "mode": "in_person"}
    s = next_slot(days=5)
    Appointment.objects.create(
        patient=q1,
        start=s,
        end=s + timedelta(minutes=30),
        status="held",
        hold_expires_at=now - timedelta(minutes=1),
        **common,
    )
    if second == "lapsed request":
        at, status, expiry = now - timedelta(hours=1), "pending", None
    else:
        at, status, expiry = next_slot(days=7), "held", now - timedelta(minutes=1)
    ended = Appointment.objects.create(
        patient=q2,
        start=at,
        end=at + timedelta(minutes=30),
        status=status,
        hold_expires_at=expiry,
        **common,
    )
    s2 = next_slot(days=6)
    confirmed = Appointment.objects.create(
        patient=q2, start=s2, end=s2 + timedelta(minutes=30), status="confirmed", **common
    )
    token = login(Client(), d.user.email)["access"]
    telling, go = threading.Event(), threading.Event()
    original = services.tell_both

    def tell_both(appointment, kind, render):
        original(appointment, kind, render)
        if threading.current_thread().name == "housekeeping" and not telling.is_set():
            telling.set()  # housekeeping holds its first notification's locks: pause here
            go.wait(30)

    monkeypatch.setattr(services, "tell_both", tell_both)
    out: dict = {}

    def run_housekeeping():
        try:
            out["housekeeping"] = housekeeping.call()
        except BaseException as exc:  # reported below
            out["housekeeping"] = exc
        finally:
            connections.close_all()

    def cancel():
        try:
            out["cancel"] = post(
                Client(raise_request_exception=False),
                f"/api/v1/appointments/{confirmed.id}/cancel",
                {},
                **bearer(token),
            )
        finally:
            connections.close_all()

    keeper = threading.Thread(target=run_housekeeping, name="housekeeping")
    keeper.start()
    assert telling.wait(30)
    canceller = threading.Thread(target=cancel, name="cancel")
    canceller.start()
    canceller.join(0.5)  # the cancel is waiting for a lock now (or done)
    go.set()
    keeper.join(60)
    canceller.join(60)
    r = out["cancel"]
    assert r.status_code == 200, (r.status_code, r.content[:300], out["housekeeping"])
    assert isinstance(out["housekeeping"], dict), out["housekeeping"]
    done = out["housekeeping"]
    assert (done["holds_released"], done["requests_lapsed"]) == (
        (1, 1) if second == "lapsed request" else (2, 0)
    )
    ended.refresh_from_db()
    confirmed.refresh_from_db()
    assert (ended.status, confirmed.status) == ("cancelled", "cancelled")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("closing", ["doctor's account", "patient's account", "verification"])
def test_a_booking_committed_beside_a_closing_does_not_stay_active(
    doctor_with_hours, monkeypatch, closing
):
    """A booking has read the doctor as bookable and inserted its appointment; before it
    commits, the doctor's or the patient's account is closed, or the doctor's verification
    withdrawn. That change waits for the booking (its rows are locked for share), then
    cancels the new appointment: nobody is left with an appointment nobody can keep."""
    from accounts.models import Role
    from doctors.services import doctor_verify

    d, patient = doctor_with_hours, make_user()
    inserted, go = threading.Event(), threading.Event()
    original = services.schedule_reminders

    def schedule_reminders(appointment):  # inside the booking's transaction, after the insert
        original(appointment)
        inserted.set()
        go.wait(30)

    monkeypatch.setattr(services, "schedule_reminders", schedule_reminders)
    out: dict = {}

    def book():
        try:
            out["booked"] = services.appointment_book(
                patient=patient, doctor_id=d.id, start=next_slot(), mode="in_person"
            )
        except BaseException as exc:  # reported below
            out["booked"] = exc
        finally:
            connections.close_all()

    def close():
        try:
            if closing == "verification":
                admin = make_user(role=Role.ADMIN)
                doctor_verify(actor=admin, doctor_id=d.id, decision="rejected")
            else:
                user = d.user if closing == "doctor's account" else patient
                user.is_active = False
                user.save()
            out["closed"] = True
        except BaseException as exc:  # reported below
            out["closed"] = exc
        finally:
            connections.close_all()

    booking = threading.Thread(target=book)
    booking.start()
    assert inserted.wait(30)
    closer = threading.Thread(target=close)
    closer.start()
    closer.join(0.5)  # waiting for the booking's locks
    assert closer.is_alive()
    go.set()
    booking.join(60)
    closer.join(60)
    assert isinstance(out["booked"], Appointment), out["booked"]
    assert out["closed"] is True, out["closed"]
    out["booked"].refresh_from_db()
    assert out["booked"].status == "cancelled"


@pytest.mark.django_db(transaction=True)
def test_overlapping_hours_created_at_once_are_not_both_accepted():
    from datetime import time

    from bookings.models import AvailabilityRule
    from core.errors import InvalidRequest
    from tests.doctors.factories import doctor
    from tests.threads import run_together

    profile = doctor(offers_video=True)
    clinic = profile.clinics.get()  # in Cairo (UTC+2); video hours in the profile's UTC
    bodies = [
        {
            "mode": "in_person",
            "clinic_id": clinic.id,
            "weekday": 2,
            "start": time(9),
            "end": time(12),
        },
        {"mode": "video", "clinic_id": None, "weekday": 2, "start": time(8), "end": time(11)},
    ]
    results, errors = run_together(
        2, lambda n: services.rule_create(user=profile.user, **bodies[n])
    )
    assert len(results) == 1 and len(errors) == 1, (results, errors)
    assert isinstance(errors[0], InvalidRequest)
    assert AvailabilityRule.objects.filter(doctor=profile).count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("closing", ["verification", "patient's account"])
def test_a_move_beside_a_withdrawal_or_a_closing_does_not_deadlock(
    doctor_with_hours, monkeypatch, closing
):
    """A move takes the doctor's profile and both accounts (for share) before the old
    appointment (for update): the order closing an account or withdrawing a verification
    takes them in, so the closing waits for the move and then cancels the new appointment."""
    from accounts.models import Role
    from accounts.services import user_set_active
    from bookings import selectors
    from doctors.services import doctor_verify

    d, patient = doctor_with_hours, make_user()
    old = services.appointment_book(
        patient=patient, doctor_id=d.id, start=next_slot(days=3), mode="in_person"
    )
    reached, go = threading.Event(), threading.Event()
    original = selectors.bookable_doctor

    def bookable_doctor(*args, **kwargs):  # the move pauses before it locks the doctor
        if threading.current_thread().name == "move" and not reached.is_set():
            reached.set()
            go.wait(30)
        return original(*args, **kwargs)

    monkeypatch.setattr(selectors, "bookable_doctor", bookable_doctor)
    out: dict = {}

    def move():
        try:
            out["move"] = services.appointment_reschedule(
                user=patient, appointment_id=old.id, start=next_slot(days=4)
            )
        except BaseException as exc:  # reported below
            out["move"] = exc
        finally:
            connections.close_all()

    def close():
        try:
            admin = make_user(role=Role.ADMIN)
            if closing == "verification":
                doctor_verify(actor=admin, doctor_id=d.id, decision="rejected")
            else:
                user_set_active(actor=admin, user=patient, active=False)
            out["close"] = True
        except BaseException as exc:  # reported below
            out["close"] = exc
        finally:
            connections.close_all()

    mover = threading.Thread(target=move, name="move")
    mover.start()
    assert reached.wait(30)
    closer = threading.Thread(target=close, name="close")
    closer.start()
    closer.join(0.5)
    go.set()
    mover.join(60)
    closer.join(60)
    from core.errors import ApplicationError

    # the move came second: refused in the envelope (never a deadlock), or moved and cancelled
    assert isinstance(out["move"], Appointment | ApplicationError), out
    assert out["close"] is True, out
    assert not Appointment.objects.filter(
        patient=patient, status__in=["held", "pending", "confirmed"]
    ).exists()


@pytest.mark.django_db(transaction=True)
def test_a_booking_that_releases_an_expired_hold_and_a_cancel_beside_it_both_succeed(
    doctor_with_hours, monkeypatch
):
    """The booking tells the released hold's parties, then its own: every one of those event
    counters is locked at once, in order, before the first."""
    d = doctor_with_hours
    now = datetime.now(UTC)
    booker = make_user()
    while str(booker.pk) >= str(d.user_id):  # the booker's counter comes before the doctor's
        booker = make_user()
    s = next_slot(days=5)
    Appointment.objects.create(
        doctor=d,
        patient=make_user(),
        mode="in_person",
        start=s,
        end=s + timedelta(minutes=30),
        status="held",
        hold_expires_at=now - timedelta(minutes=1),
    )
    s2 = next_slot(days=6)
    other = Appointment.objects.create(
        doctor=d,
        patient=booker,
        mode="in_person",
        start=s2,
        end=s2 + timedelta(minutes=30),
        status="confirmed",
    )
    released, go = threading.Event(), threading.Event()
    original = services.tell_each

    def tell_each(**kwargs):
        original(**kwargs)
        if threading.current_thread().name == "book" and not released.is_set():
            released.set()
            go.wait(30)

    monkeypatch.setattr(services, "tell_each", tell_each)
    out: dict = {}

    def book():
        try:
            out["book"] = services.appointment_book(
                patient=booker, doctor_id=d.id, start=s, mode="in_person"
            )
        except BaseException as exc:  # reported below
            out["book"] = exc
        finally:
            connections.close_all()

    def cancel():
        try:
            out["cancel"] = services.appointment_cancel(user=d.user, appointment_id=other.id)
        except BaseException as exc:  # reported below
            out["cancel"] = exc
        finally:
            connections.close_all()

    booking = threading.Thread(target=book, name="book")
    booking.start()
    assert released.wait(30)
    canceller = threading.Thread(target=cancel, name="cancel")
    canceller.start()
    canceller.join(0.5)
    go.set()
    booking.join(60)
    canceller.join(60)
    assert isinstance(out["book"], Appointment), out
    assert isinstance(out["cancel"], Appointment), out
