"""Transactions that change appointments in bulk and the requests running beside them take
their locks in one order: no deadlock, and so no error, whoever comes first."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connections
from django.test import Client

from bookings import services
from bookings.models import Appointment
from bookings.tasks import housekeeping
from core.errors import ApplicationError
from tests.bookings.conftest import next_slot
from tests.factories import bearer, login, make_user, post


@dataclass
class Race:
    first: Any  # what each returned, or the exception it raised
    second: Any
    second_waited: bool  # still running half a second after it started (waiting for a lock)


def race(monkeypatch, first, second, *, at: tuple[Any, str], before: bool = False) -> Race:
    """Run ``first`` in a thread until its first call of ``at`` (a module and a function's
    name) returns (or, ``before``, until it is about to call it): paused there, it holds the
    locks it has taken. Then ``second`` runs in another thread; half a second later ``first``
    goes on. Each thread uses its own database connection."""
    module, name = at
    original = getattr(module, name)
    reached, go = threading.Event(), threading.Event()

    def pausing(*args: Any, **kwargs: Any) -> Any:
        paused = threading.current_thread().name == "first" and not reached.is_set()
        if paused and before:
            reached.set()
            go.wait(30)
        found = original(*args, **kwargs)
        if paused and not before:
            reached.set()
            go.wait(30)
        return found

    monkeypatch.setattr(module, name, pausing)
    out: dict[str, Any] = {}

    def run(key: str, work: Any) -> None:
        try:
            out[key] = work()
        except BaseException as exc:  # the test looks at it
            out[key] = exc
        finally:
            connections.close_all()

    one = threading.Thread(target=run, args=("first", first), name="first")
    one.start()
    assert reached.wait(30)
    two = threading.Thread(target=run, args=("second", second), name="second")
    two.start()
    two.join(0.5)
    waited = two.is_alive()
    go.set()
    one.join(60)
    two.join(60)
    return Race(out["first"], out["second"], waited)


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
    cancel_url = f"/api/v1/appointments/{confirmed.id}/cancel"
    outcome = race(  # housekeeping paused holding its first notification's locks
        monkeypatch,
        housekeeping.call,
        lambda: post(Client(raise_request_exception=False), cancel_url, {}, **bearer(token)),
        at=(services, "tell_both"),
    )
    r = outcome.second
    assert r.status_code == 200, (r.status_code, r.content[:300], outcome.first)
    assert isinstance(outcome.first, dict), outcome.first
    done = outcome.first
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

    def close() -> bool:
        if closing == "verification":
            doctor_verify(
                actor=make_user(role=Role.ADMIN),
                doctor_id=d.id,
                decision="rejected",
                reason="licence expired",
            )
        else:
            user = d.user if closing == "doctor's account" else patient
            user.is_active = False
            user.save()
        return True

    outcome = race(  # the booking paused after its insert, before its commit
        monkeypatch,
        lambda: services.appointment_book(
            patient=patient, doctor_id=d.id, start=next_slot(), mode="in_person"
        ),
        close,
        at=(services, "_history"),
    )
    assert outcome.second_waited  # for the booking's locks
    assert isinstance(outcome.first, Appointment), outcome.first
    assert outcome.second is True, outcome.second
    outcome.first.refresh_from_db()
    assert outcome.first.status == "cancelled"


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

    def close() -> bool:
        admin = make_user(role=Role.ADMIN)
        if closing == "verification":
            doctor_verify(
                actor=admin, doctor_id=d.id, decision="rejected", reason="licence expired"
            )
        else:
            user_set_active(actor=admin, user=patient, active=False)
        return True

    outcome = race(  # the move paused before it locks the doctor
        monkeypatch,
        lambda: services.appointment_reschedule(
            user=patient, appointment_id=old.id, start=next_slot(days=4)
        ),
        close,
        at=(selectors, "bookable_doctor"),
        before=True,
    )
    # the move came second: refused in the envelope (never a deadlock), or moved and cancelled
    assert isinstance(outcome.first, Appointment | ApplicationError), outcome
    assert outcome.second is True, outcome
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
    outcome = race(  # the booking paused after telling the released hold's parties
        monkeypatch,
        lambda: services.appointment_book(
            patient=booker, doctor_id=d.id, start=s, mode="in_person"
        ),
        lambda: services.appointment_cancel(user=d.user, appointment_id=other.id),
        at=(services, "tell_each"),
    )
    assert isinstance(outcome.first, Appointment), outcome
    assert isinstance(outcome.second, Appointment), outcome


@pytest.mark.django_db(transaction=True)
def test_a_booking_beside_the_doctors_erasure_does_not_deadlock(doctor_with_hours, monkeypatch):
    """Erasure locks the doctor's account, then changes their profile; a booking locks the
    doctor's account (and the patient's) before the profile, in that order, in its one
    statement. With the profile first, a booking arriving between the two waited for the
    account while holding the profile the erasure needed: PostgreSQL ended one of them."""
    from accounts import services as accounts_services
    from accounts.models import User
    from accounts.services import account_delete

    d, patient = doctor_with_hours, make_user()
    outcome = race(  # the erasure paused right after it locked the doctor's account
        monkeypatch,
        lambda: account_delete(user=User.objects.get(pk=d.user_id)),
        lambda: services.appointment_book(
            patient=patient, doctor_id=d.id, start=next_slot(days=3), mode="in_person"
        ),
        at=(accounts_services, "_locked"),
    )
    assert outcome.second_waited  # for the erasure
    assert isinstance(outcome.first, User) and outcome.first.deleted_at is not None, outcome
    # The booking came second: it finds nobody to book (never a deadlock, never a 500).
    assert isinstance(outcome.second, ApplicationError), outcome
    assert not Appointment.objects.filter(doctor=d).exists()
