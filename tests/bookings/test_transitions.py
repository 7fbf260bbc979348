"""The life cycle's transitions end to end: who sees which appointments, who may move them,
what each transition publishes (after commit only) and writes to the history, the database's
own guard on a patient's time, and reminders of a moved appointment."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import IntegrityError, transaction
from django.test import Client
from django.utils import timezone

from accounts.models import Role, User
from bookings.errors import SlotTaken
from bookings.models import (
    Appointment,
    BookingPolicy,
    ReminderDelivery,
    Status,
    StatusChange,
)
from bookings.services import (
    appointment_book,
    appointment_cancel,
    appointment_decide,
    appointment_mark,
    appointment_paid,
    appointment_reschedule,
)
from bookings.tasks import housekeeping, remind, reminders_due, send_reminders
from doctors.models import DoctorProfile
from realtime import fanout
from realtime.models import Notification
from tests.bookings.conftest import next_slot
from tests.doctors.factories import doctor
from tests.factories import bearer, login, make_user, post

pytestmark = pytest.mark.django_db

DAY, HOUR = 24 * 60, 60


# --- helpers ------------------------------------------------------------------------------
def headers_of(api: Client, user: User) -> dict[str, str]:
    return bearer(login(api, user.email)["access"])


def appt(profile: DoctorProfile, patient: User, start: datetime, status: str) -> Appointment:
    """An appointment written straight to the database (30 minutes, in person)."""
    return Appointment.objects.create(
        doctor=profile,
        patient=patient,
        mode="in_person",
        status=status,
        start=start,
        end=start + timedelta(minutes=30),
    )


def video_slot(profile: DoctorProfile) -> datetime:
    """15:00 in three days, in the doctor's own zone (video hours live there)."""
    zone = ZoneInfo(profile.time_zone)
    day = (timezone.now() + timedelta(days=3)).astimezone(zone).date()
    return datetime.combine(day, time(15), tzinfo=zone)


def confirmed(profile: DoctorProfile, patient: User, start: datetime | None = None) -> Appointment:
    return appointment_book(
        patient=patient, doctor_id=profile.id, start=start or next_slot(), mode="in_person"
    )


def booked_the_day_before(profile: DoctorProfile, patient: User, start: datetime) -> Appointment:
    """An appointment starting at ``start`` (in the past, say), booked a day before it."""
    return appointment_book(
        patient=patient,
        doctor_id=profile.id,
        start=start,
        mode="in_person",
        now=start - timedelta(days=1),
    )


def pending(profile: DoctorProfile, patient: User) -> Appointment:
    BookingPolicy.objects.filter(doctor=profile).update(requires_approval=True)
    a = confirmed(profile, patient)
    assert a.status == Status.PENDING
    return a


def held(profile: DoctorProfile, patient: User, now: datetime | None = None) -> Appointment:
    BookingPolicy.objects.filter(doctor=profile).update(payment_required=True)
    a = appointment_book(
        patient=patient,
        doctor_id=profile.id,
        start=video_slot(profile),
        mode="video",
        now=now or timezone.now(),
    )
    assert a.status == Status.HELD
    return a


@pytest.fixture
def pushes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str, Any]]:
    """What reaches the channel layer, as ``(user id, event type, appointment id, event
    id)``: ``publish_many_on_commit`` hands its batches, after commit, to
    ``realtime.fanout.publish_from_thread`` (the group_send / Redis PUBLISH)."""
    seen: list[tuple[str, str, str, Any]] = []

    def record(messages: list[dict[str, Any]], layer: Any = None) -> None:
        for message in messages:
            assert message["type"] == "fanout.events"
            for user_ids, event_id, text in message["events"]:
                event = json.loads(text)
                assert event["id"] == event_id
                for user_id in user_ids:
                    seen.append(
                        (user_id, event["type"], event["data"].get("appointment_id"), event_id)
                    )

    monkeypatch.setattr(fanout, "publish_from_thread", record)
    return seen


def counts() -> tuple[int, int, int]:
    return (
        Appointment.objects.count(),
        StatusChange.objects.count(),
        Notification.objects.count(),
    )


# --- 1. lists per role --------------------------------------------------------------------
def test_each_role_lists_only_the_appointments_it_may_see(api, doctor_with_hours):
    now = timezone.now()
    a, b = doctor_with_hours, doctor()
    p1, p2 = make_user(), make_user()
    a_up = appt(a, p1, now + timedelta(days=2), "confirmed")
    a_off = appt(a, p1, now + timedelta(days=3), "cancelled")
    a_past = appt(a, p1, now - timedelta(days=2), "completed")
    b_up = appt(b, p2, now + timedelta(days=2, hours=1), "confirmed")
    b_p1 = appt(b, p1, now + timedelta(days=4), "pending")
    b_past = appt(b, p2, now - timedelta(days=3), "no_show")

    def ids(headers: dict[str, str], query: str = "") -> list[str]:
        r = api.get(f"/api/v1/appointments{query}", headers=headers)
        assert r.status_code == 200, r.json()
        return [item["id"] for item in r.json()["items"]]

    def expect(*found: Appointment) -> list[str]:
        return [str(x.id) for x in found]

    doc_a, doc_b = headers_of(api, a.user), headers_of(api, b.user)
    assert ids(doc_a) == ids(doc_a, "?scope=upcoming") == expect(a_up, a_off)
    assert ids(doc_a, "?scope=upcoming&status=confirmed") == expect(a_up)
    assert ids(doc_a, "?scope=upcoming&status=cancelled") == expect(a_off)
    assert ids(doc_a, "?scope=past") == expect(a_past)
    assert ids(doc_a, "?scope=past&status=confirmed") == []
    assert ids(doc_b) == expect(b_up, b_p1)
    assert ids(doc_b, "?scope=past") == expect(b_past)

    pat1, pat2 = headers_of(api, p1), headers_of(api, p2)
    assert ids(pat1) == expect(a_up, a_off, b_p1)
    assert ids(pat1, "?status=pending") == expect(b_p1)
    assert ids(pat1, "?scope=past") == expect(a_past)
    assert ids(pat2) == expect(b_up)
    assert ids(pat2, "?scope=past&status=no_show") == expect(b_past)

    helper = make_user(role=Role.HELPER)
    blind = headers_of(api, helper)
    assert ids(blind) == ids(blind, "?scope=past") == []
    group = Group.objects.create(name=f"viewers-{helper.pk}")
    group.permissions.add(
        Permission.objects.get(content_type__app_label="bookings", codename="view_appointment")
    )
    viewer = make_user(role=Role.HELPER)
    viewer.groups.add(group)
    everything_upcoming = expect(a_up, b_up, a_off, b_p1)
    assert ids(headers_of(api, viewer)) == everything_upcoming

    admin = headers_of(api, make_user(role=Role.ADMIN))
    assert ids(admin) == everything_upcoming
    assert ids(admin, "?scope=past") == expect(a_past, b_past)  # latest first
    assert ids(admin, "?scope=past&status=no_show") == expect(b_past)

    for query in ("?scope=future", "?scope=", "?status=bogus", "?status=CONFIRMED"):
        r = api.get(f"/api/v1/appointments{query}", headers=admin)
        assert r.status_code == 422, query
        assert r.json()["error"]["code"] == "request.invalid"


# --- 2. who may change an appointment through the API -------------------------------------
def test_a_patient_can_neither_decide_nor_mark_their_own_appointment(api, doctor_with_hours):
    patient = make_user()
    headers = headers_of(api, patient)
    request = pending(doctor_with_hours, patient)
    for action in ("accept", "reject"):
        r = post(api, f"/api/v1/appointments/{request.id}/{action}", **headers)
        assert r.status_code == 403, (action, r.json())
        assert r.json()["error"]["code"] == "auth.role_required"
    request.refresh_from_db()
    assert request.status == Status.PENDING
    # confirmed and started: only the role stands in the way of marking it
    BookingPolicy.objects.filter(doctor=doctor_with_hours).update(requires_approval=False)
    started = confirmed(doctor_with_hours, patient, next_slot(hour=12))
    Appointment.objects.filter(id=started.id).update(
        start=timezone.now() - timedelta(minutes=10), end=timezone.now() + timedelta(minutes=20)
    )
    for action in ("complete", "no-show"):
        r = post(api, f"/api/v1/appointments/{started.id}/{action}", **headers)
        assert r.status_code == 403, (action, r.json())
        assert r.json()["error"]["code"] == "auth.role_required"
    started.refresh_from_db()
    assert started.status == Status.CONFIRMED
    assert StatusChange.objects.filter(appointment__in=[request, started]).count() == 2


def test_strangers_and_other_doctors_cannot_see_or_change_an_appointment(api, doctor_with_hours):
    patient = make_user()
    a = confirmed(doctor_with_hours, patient)
    target = next_slot(hour=12).isoformat()
    other_doctor = doctor()
    for outsider in (make_user(), other_doctor.user):
        headers = headers_of(api, outsider)
        assert api.get(f"/api/v1/appointments/{a.id}", headers=headers).status_code == 404
        calls: list[tuple[str, dict[str, Any]]] = [
            ("cancel", {"reason": "x"}),
            ("reschedule", {"start": target}),
        ]
        if outsider.role == Role.DOCTOR:
            calls += [("accept", {}), ("reject", {}), ("complete", {}), ("no-show", {})]
        for action, body in calls:
            r = post(api, f"/api/v1/appointments/{a.id}/{action}", body, **headers)
            assert r.status_code == 404, (outsider.role, action, r.json())
            assert r.json()["error"]["code"] == "booking.not_found"
    a.refresh_from_db()
    assert a.status == Status.CONFIRMED
    assert Appointment.objects.count() == 1
    assert StatusChange.objects.filter(appointment=a).count() == 1


def test_the_doctor_cannot_mark_an_appointment_before_its_start(api, doctor_with_hours):
    a = confirmed(doctor_with_hours, make_user())
    Appointment.objects.filter(id=a.id).update(
        start=timezone.now() + timedelta(minutes=5), end=timezone.now() + timedelta(minutes=35)
    )
    headers = headers_of(api, doctor_with_hours.user)
    for action in ("complete", "no-show"):
        r = post(api, f"/api/v1/appointments/{a.id}/{action}", **headers)
        assert r.status_code == 409, (action, r.json())
        assert r.json()["error"]["code"] == "booking.transition_not_allowed"
    a.refresh_from_db()
    assert a.status == Status.CONFIRMED


# --- 3 and 4. every transition: published after commit, one history row ------------------
# Each case sets up (outside the transaction under test) and returns the transition: it
# returns the appointment id the events carry, their type, and the history rows expected,
# as (appointment id, status, actor id, reason).
History = list[tuple[Any, str, Any, str]]
Act = Callable[[], tuple[Any, str, History]]


def _created(profile: DoctorProfile, patient: User) -> Act:
    def act() -> tuple[Any, str, History]:
        a = confirmed(profile, patient)
        return a.id, "booking.created", [(a.id, "confirmed", patient.pk, "")]

    return act


def _decided(accept: bool) -> Callable[[DoctorProfile, User], Act]:
    def case(profile: DoctorProfile, patient: User) -> Act:
        a = pending(profile, patient)

        def act() -> tuple[Any, str, History]:
            reason = "" if accept else "fully booked"
            appointment_decide(
                doctor_user=profile.user, appointment_id=a.id, accept=accept, reason=reason
            )
            status = "confirmed" if accept else "rejected"
            return a.id, f"booking.{status}", [(a.id, status, profile.user_id, reason)]

        return act

    return case


def _cancelled_by(side: str) -> Callable[[DoctorProfile, User], Act]:
    def case(profile: DoctorProfile, patient: User) -> Act:
        a = confirmed(profile, patient)  # three days ahead: outside the 24 h cut-off
        user = patient if side == "patient" else profile.user

        def act() -> tuple[Any, str, History]:
            appointment_cancel(user=user, appointment_id=a.id, reason=f"by the {side}")
            return a.id, "booking.cancelled", [(a.id, "cancelled", user.pk, f"by the {side}")]

        return act

    return case


def _rescheduled(profile: DoctorProfile, patient: User) -> Act:
    old = confirmed(profile, patient)

    def act() -> tuple[Any, str, History]:
        new = appointment_reschedule(user=patient, appointment_id=old.id, start=next_slot(hour=12))
        return (
            new.id,
            "booking.rescheduled",
            [
                (old.id, "cancelled", patient.pk, "rescheduled"),
                (new.id, "confirmed", patient.pk, "rescheduled"),
            ],
        )

    return act


def _marked(outcome: str) -> Callable[[DoctorProfile, User], Act]:
    def case(profile: DoctorProfile, patient: User) -> Act:
        a = confirmed(profile, patient)

        def act() -> tuple[Any, str, History]:
            appointment_mark(
                doctor_user=profile.user,
                appointment_id=a.id,
                outcome=outcome,
                now=a.start + timedelta(minutes=5),
            )
            return a.id, f"booking.{outcome}", [(a.id, outcome, profile.user_id, "")]

        return act

    return case


def _hold_expired(profile: DoctorProfile, patient: User) -> Act:
    a = held(profile, patient, now=timezone.now() - timedelta(hours=1))  # ran out 45 min ago

    def act() -> tuple[Any, str, History]:
        assert housekeeping.call()["holds_released"] == 1
        return a.id, "booking.expired", [(a.id, "cancelled", None, "hold expired")]

    return act


def _request_lapsed(profile: DoctorProfile, patient: User) -> Act:
    BookingPolicy.objects.filter(doctor=profile).update(requires_approval=True)
    a = booked_the_day_before(profile, patient, next_slot(days=-1, hour=11))

    def act() -> tuple[Any, str, History]:
        assert housekeeping.call()["requests_lapsed"] == 1
        return a.id, "booking.cancelled", [(a.id, "cancelled", None, "not answered in time")]

    return act


def _auto_completed(profile: DoctorProfile, patient: User) -> Act:
    a = booked_the_day_before(profile, patient, next_slot(days=-2, hour=10))

    def act() -> tuple[Any, str, History]:
        assert housekeeping.call()["auto_completed"] == 1
        return a.id, "booking.completed", [(a.id, "completed", None, "completed automatically")]

    return act


def _paid(profile: DoctorProfile, patient: User) -> Act:
    a = held(profile, patient)

    def act() -> tuple[Any, str, History]:
        appointment_paid(appointment_id=a.id)
        return a.id, "booking.confirmed", [(a.id, "confirmed", None, "paid")]

    return act


CASES: dict[str, Callable[[DoctorProfile, User], Act]] = {
    "created": _created,
    "accepted": _decided(accept=True),
    "rejected": _decided(accept=False),
    "cancelled_by_patient": _cancelled_by("patient"),
    "cancelled_by_doctor": _cancelled_by("doctor"),
    "rescheduled": _rescheduled,
    "completed": _marked("completed"),
    "no_show": _marked("no_show"),
    "hold_expired": _hold_expired,
    "request_lapsed": _request_lapsed,
    "auto_completed": _auto_completed,
    "paid": _paid,
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_transition_is_published_to_both_parties_only_after_commit(
    doctor_with_hours, pushes, django_capture_on_commit_callbacks, name
):
    patient = make_user()
    act = CASES[name](doctor_with_hours, patient)
    with django_capture_on_commit_callbacks() as callbacks:
        appointment_id, kind, _ = act()
    assert pushes == []  # nothing leaves before the commit
    for callback in callbacks:
        callback()
    parties = (patient.pk, doctor_with_hours.user_id)
    stored = {
        n.user_id: n.seq
        for n in Notification.objects.filter(
            kind=kind, data__appointment_id=str(appointment_id), user_id__in=parties
        )
    }
    assert sorted(pushes) == sorted(
        (str(user_id), kind, str(appointment_id), stored[user_id]) for user_id in parties
    )


@pytest.mark.django_db(transaction=True)
def test_a_committed_transition_is_answered_even_if_its_push_fails(
    api, doctor_with_hours, monkeypatch
):
    """Events are rows first, pushes second (DESIGN): a push lost after the commit is
    resumed from the rows, and never turns a change that happened into an error."""
    import redis

    patient = make_user()
    headers = headers_of(api, patient)

    def layer_down(messages: list[dict[str, Any]], layer: Any = None) -> None:
        raise redis.exceptions.ConnectionError("the channel layer's Redis is gone")

    monkeypatch.setattr(fanout, "publish_from_thread", layer_down)
    body = {"doctor_id": str(doctor_with_hours.id), "start": next_slot().isoformat()}
    r = post(api, "/api/v1/appointments", {**body, "mode": "in_person"}, **headers)
    booked = Appointment.objects.get(patient=patient)  # committed, whatever the answer
    assert r.status_code == 201, r.json()
    assert r.json()["id"] == str(booked.id)
    assert Notification.objects.filter(data__appointment_id=str(booked.id)).count() == 2


@pytest.mark.parametrize("name", list(CASES))
def test_each_transition_writes_one_history_row_naming_its_actor(doctor_with_hours, name):
    act = CASES[name](doctor_with_hours, make_user())
    before = set(StatusChange.objects.values_list("id", flat=True))
    _, _, expected = act()
    rows = StatusChange.objects.exclude(id__in=before).order_by("id")
    assert [(r.appointment_id, r.status, r.actor_id, r.reason) for r in rows] == expected
    for appointment_id, status, _, _ in expected:  # the row tells the appointment's status
        assert Appointment.objects.get(id=appointment_id).status == status


# --- 5. the database guards a patient's time ----------------------------------------------
@pytest.mark.parametrize("status", ["held", "pending", "confirmed"])
def test_the_database_refuses_a_patient_two_active_appointments_at_once(doctor_with_hours, status):
    patient = make_user()
    start = next_slot()
    appt(doctor_with_hours, patient, start, "confirmed")
    other = doctor()
    with pytest.raises(IntegrityError, match="appt_patient_no_overlap"), transaction.atomic():
        appt(other, patient, start + timedelta(minutes=10), status)
    assert not Appointment.objects.filter(doctor=other).exists()


@pytest.mark.parametrize("status", ["cancelled", "rejected", "completed", "no_show"])
def test_an_inactive_appointment_does_not_hold_the_patients_time(doctor_with_hours, status):
    patient = make_user()
    start = next_slot()
    appt(doctor_with_hours, patient, start, "confirmed")
    with transaction.atomic():
        appt(doctor(), patient, start + timedelta(minutes=10), status)


# --- 6. reminders follow a moved appointment ----------------------------------------------
def test_a_moved_appointment_is_reminded_at_its_new_time_never_at_the_old(doctor_with_hours):
    patient = make_user()
    old = confirmed(doctor_with_hours, patient, next_slot(days=3, hour=10))
    Appointment.objects.filter(id=old.id).update(created_at=timezone.now() - timedelta(days=10))
    assert reminders_due(old.start - timedelta(days=1)) == [(old.id, DAY)]  # due, unmoved
    new = appointment_reschedule(
        user=patient, appointment_id=old.id, start=next_slot(days=4, hour=11)
    )
    Appointment.objects.filter(id=new.id).update(created_at=timezone.now() - timedelta(days=10))
    for offset in (DAY, HOUR):
        moment = old.start - timedelta(minutes=offset)
        assert reminders_due(moment) == []
        assert send_reminders(moment) == 0
        assert remind(old.id, offset, now=moment) == "skipped: not confirmed"
    for offset in (DAY, HOUR):
        moment = new.start - timedelta(minutes=offset)
        assert reminders_due(moment) == [(new.id, offset)]
        assert send_reminders(moment) == 1
    assert not ReminderDelivery.objects.filter(appointment_id=old.id).exists()
    assert sorted(
        ReminderDelivery.objects.filter(appointment=new).values_list("offset_minutes", flat=True)
    ) == [HOUR, DAY]
    told = Notification.objects.filter(kind="booking.reminder")
    assert {n.data["appointment_id"] for n in told} == {str(new.id)}
    assert sorted(str(n.user_id) for n in told) == sorted(
        [str(patient.pk), str(doctor_with_hours.user_id)] * 2
    )


# --- 7 (and 3). a failed move changes nothing and tells nobody ----------------------------
@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("taken", 409, "booking.slot_taken"),
        ("too_late", 409, "booking.cancellation_too_late"),
        ("unavailable", 422, "booking.slot_unavailable"),
    ],
)
def test_a_failed_move_leaves_nothing_behind_and_publishes_nothing(
    api, doctor_with_hours, pushes, django_capture_on_commit_callbacks, case, status, code
):
    patient = make_user()
    a = confirmed(doctor_with_hours, patient)
    target = next_slot(hour=12)
    if case == "taken":
        confirmed(doctor_with_hours, make_user(), target)
    elif case == "too_late":
        soon = timezone.now() + timedelta(hours=2)
        Appointment.objects.filter(id=a.id).update(start=soon, end=soon + timedelta(minutes=30))
    else:
        target = next_slot(hour=20)  # the doctor's hours end at 17:00
    headers = headers_of(api, patient)
    before = counts()
    with django_capture_on_commit_callbacks(execute=True):
        r = post(
            api,
            f"/api/v1/appointments/{a.id}/reschedule",
            {"start": target.isoformat()},
            **headers,
        )
    assert r.status_code == status, r.json()
    assert r.json()["error"]["code"] == code
    assert counts() == before
    assert pushes == []
    a.refresh_from_db()
    assert a.status == Status.CONFIRMED
    assert not Appointment.objects.filter(rescheduled_from=a).exists()


def test_a_move_onto_a_taken_slot_registers_no_after_commit_push(
    doctor_with_hours, pushes, django_capture_on_commit_callbacks
):
    """At the service: the move fails inside its transaction, so no callback survives."""
    patient = make_user()
    a = confirmed(doctor_with_hours, patient)
    taken = confirmed(doctor_with_hours, make_user(), next_slot(hour=12))
    before = counts()
    with django_capture_on_commit_callbacks() as callbacks:
        with pytest.raises(SlotTaken):
            appointment_reschedule(user=patient, appointment_id=a.id, start=taken.start)
    for callback in callbacks:
        callback()
    assert pushes == []
    assert counts() == before
    assert Appointment.objects.get(id=a.id).status == Status.CONFIRMED
