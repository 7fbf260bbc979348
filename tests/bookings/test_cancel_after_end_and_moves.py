"""An appointment that has ended is marked, not cancelled, by its parties (staff keep their
audited override); a request the doctor has not answered is withdrawn at any time; a move
says which appointment it replaced and keeps the payment; care ends when the patient's
account is made staff."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import translation

from accounts.models import Role, User
from bookings import services
from bookings.errors import AppointmentOver, CancellationTooLate
from bookings.models import Appointment, BookingPolicy, Status
from realtime.models import Notification
from tests.bookings.conftest import next_slot
from tests.bookings.test_care_and_role_changes import care_answers, cared_for
from tests.bookings.test_transitions import held
from tests.doctors.factories import doctor
from tests.factories import bearer, login, make_user
from tests.procs import run_on_sqlite

pytestmark = pytest.mark.django_db


def booked_before(profile, patient, start: datetime) -> Appointment:
    """A confirmed appointment at ``start``, booked the day before."""
    return services.appointment_book(
        patient=patient,
        doctor_id=profile.id,
        start=start,
        mode="in_person",
        now=start - timedelta(days=1),
    )


def test_an_ended_appointment_is_marked_not_cancelled_by_its_parties(doctor_with_hours):
    """The doctor and the patient are refused once it has ended (its outcome and the
    patient's review would go); the doctor is told to mark it, in Arabic too. It stays
    confirmed and can still be marked completed."""
    patient = make_user()
    a = booked_before(doctor_with_hours, patient, next_slot(days=2))
    after = a.end + timedelta(hours=2)
    for user in (doctor_with_hours.user, patient):
        with pytest.raises(AppointmentOver) as refused:
            services.appointment_cancel(user=user, appointment_id=a.id, now=after)
        assert (refused.value.code, refused.value.status) == ("booking.already_over", 409)
    with pytest.raises(AppointmentOver) as refused:
        services.appointment_cancel(user=doctor_with_hours.user, appointment_id=a.id, now=after)
    assert "mark it completed or a no-show" in str(refused.value.detail)
    with translation.override("ar"):
        to_doctor = str(refused.value.detail)
    assert "انتهى" in to_doctor and "no-show" not in to_doctor
    a.refresh_from_db()
    assert a.status == Status.CONFIRMED
    marked = services.appointment_mark(
        doctor_user=doctor_with_hours.user, appointment_id=a.id, outcome="completed", now=after
    )
    assert marked.status == Status.COMPLETED


def test_the_doctor_still_cancels_during_the_visit_and_staff_after_it(doctor_with_hours):
    during = booked_before(doctor_with_hours, make_user(), next_slot(days=2))
    cancelled = services.appointment_cancel(
        user=doctor_with_hours.user,
        appointment_id=during.id,
        now=during.start + timedelta(minutes=10),
    )
    assert cancelled.status == Status.CANCELLED
    ended = booked_before(doctor_with_hours, make_user(), next_slot(days=3))
    admin = make_user(role=Role.ADMIN)
    cancelled = services.appointment_cancel(
        user=admin, appointment_id=ended.id, now=ended.end + timedelta(hours=2)
    )
    assert cancelled.status == Status.CANCELLED


def test_the_api_refuses_the_doctor_a_cancel_after_the_end(api, doctor_with_hours):
    start = datetime.now(UTC) - timedelta(hours=3)
    a = Appointment.objects.create(
        doctor=doctor_with_hours,
        patient=make_user(),
        mode="video",
        status=Status.CONFIRMED,
        start=start,
        end=start + timedelta(minutes=30),
    )
    headers = bearer(login(api, doctor_with_hours.user.email)["access"])
    r = api.post(
        f"/api/v1/appointments/{a.id}/cancel",
        {"reason": "late"},
        content_type="application/json",
        headers={**headers, "Accept-Language": "ar"},
    )
    assert r.status_code == 409, r.content
    assert r.json()["error"]["code"] == "booking.already_over"
    a.refresh_from_db()
    assert a.status == Status.CONFIRMED


def test_a_patient_withdraws_an_unanswered_request_inside_the_cutoff(doctor_with_hours):
    """Only a confirmed appointment binds the doctor's time: a pending request the patient
    may withdraw at any time before the end (a confirmed one stays behind the cut-off)."""
    BookingPolicy.objects.filter(doctor=doctor_with_hours).update(requires_approval=True)
    patient = make_user()
    a = services.appointment_book(
        patient=patient, doctor_id=doctor_with_hours.id, start=next_slot(days=1), mode="in_person"
    )
    assert a.status == Status.PENDING
    withdrawn = services.appointment_cancel(
        user=patient, appointment_id=a.id, now=a.start - timedelta(hours=5)
    )
    assert withdrawn.status == Status.CANCELLED
    BookingPolicy.objects.filter(doctor=doctor_with_hours).update(requires_approval=False)
    confirmed = services.appointment_book(
        patient=patient, doctor_id=doctor_with_hours.id, start=next_slot(days=1), mode="in_person"
    )
    with pytest.raises(CancellationTooLate):
        services.appointment_cancel(
            user=patient, appointment_id=confirmed.id, now=confirmed.start - timedelta(hours=5)
        )


def test_a_move_names_the_appointment_it_replaced(api, doctor_with_hours):
    """The event and the answer (first and replayed, the list and the detail) carry
    ``rescheduled_from``: the old appointment was cancelled by the move, with no event of
    its own."""
    patient = make_user()
    headers = bearer(login(api, patient.email)["access"])
    r = api.post(
        "/api/v1/appointments",
        {
            "doctor_id": str(doctor_with_hours.id),
            "start": next_slot(days=3).isoformat(),
            "mode": "in_person",
        },
        content_type="application/json",
        headers=headers,
    )
    assert r.status_code == 201, r.content
    old = r.json()
    assert old["rescheduled_from"] is None
    before = Notification.objects.count()
    move = {"start": next_slot(days=4).isoformat()}
    answers = [
        api.post(
            f"/api/v1/appointments/{old['id']}/reschedule",
            move,
            content_type="application/json",
            headers={**headers, "Idempotency-Key": "move-1"},
        )
        for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [200, 200]
    assert answers[0].json() == answers[1].json()
    new = answers[0].json()
    assert new["rescheduled_from"] == old["id"] and new["id"] != old["id"]
    told = list(Notification.objects.order_by("id")[before:])
    assert {n.kind for n in told} == {"booking.rescheduled"} and len(told) == 2
    assert all(n.data["rescheduled_from"] == old["id"] for n in told)
    assert all(n.data["appointment_id"] == new["id"] for n in told)
    detail = api.get(f"/api/v1/appointments/{new['id']}", headers=headers).json()
    assert detail["rescheduled_from"] == old["id"]
    listed = api.get("/api/v1/appointments", headers=headers).json()["items"]
    assert {a["id"]: a["rescheduled_from"] for a in listed} == {
        old["id"]: None,  # cancelled by the move
        new["id"]: old["id"],
    }


def test_a_move_keeps_the_payment(doctor_with_hours):
    patient = make_user()
    paid = services.appointment_paid(appointment_id=held(doctor_with_hours, patient).id)
    assert paid.status == Status.CONFIRMED and paid.paid_at
    new = services.appointment_reschedule(
        user=patient, appointment_id=paid.id, start=paid.start + timedelta(days=1)
    )
    new.refresh_from_db()
    assert new.paid_at == paid.paid_at


def check_patient_made_staff() -> None:
    """A patient account made staff (rows changed, no receiver runs) is in nobody's care:
    the statement, the queryset and presence's list agree."""
    now = datetime.now(UTC)
    for role in (Role.HELPER, Role.ADMIN):
        profile, patient = doctor(), make_user()
        cared_for(profile, patient, now)
        assert care_answers(profile, patient, now) == (True, True, [patient.pk], [profile.user_id])
        User.objects.filter(pk=patient.pk).update(role=role)
        assert care_answers(profile, patient, now) == (False, False, [], []), role


def test_care_ends_when_the_patient_is_made_staff():
    check_patient_made_staff()


def test_care_ends_when_the_patient_is_made_staff_on_sqlite(tmp_path):
    run_on_sqlite(
        "from tests.bookings.test_cancel_after_end_and_moves import check_patient_made_staff\n"
        "check_patient_made_staff()\nprint('sqlite ok')\n",
        tmp_path,
    )


def test_a_patient_made_staff_gets_no_more_chat(monkeypatch):
    """The doctor's next message is refused, and nothing is pushed to the staff account."""
    from accounts.services import user_update_by_admin
    from chat import services as chat
    from chat.errors import NotInCare

    pushed: list = []
    monkeypatch.setattr(chat, "publish_on_commit", lambda **kw: pushed.append(kw))
    now = datetime.now(UTC)
    profile, patient = doctor(), make_user()
    cared_for(profile, patient, now)
    conversation, _ = chat.conversation_open(user=patient, other_id=str(profile.user_id))
    user_update_by_admin(actor=make_user(role=Role.ADMIN), user=patient, changes={"role": "helper"})
    pushed.clear()
    with pytest.raises(NotInCare):
        chat.message_send(
            user=profile.user,
            conversation_id=str(conversation.pk),
            text="your result is back",
            client_id="a",
        )
    with contextlib.suppress(NotInCare):  # refused (or throttled): never pushed
        chat.typing(user=profile.user, conversation_id=str(conversation.pk))
    assert pushed == []


def test_a_cancel_needs_no_body_the_reason_being_optional(api, doctor_with_hours):
    patient = make_user()
    appointment = services.appointment_book(
        patient=patient, doctor_id=doctor_with_hours.id, start=next_slot(days=5), mode="in_person"
    )
    headers = bearer(login(api, patient.email)["access"])
    url = f"/api/v1/appointments/{appointment.id}/cancel"
    r = api.post(url, "{not json", content_type="application/json", headers=headers)
    assert r.status_code in (400, 422), r.content  # a broken body is still refused
    assert Appointment.objects.get(id=appointment.id).status == Status.CONFIRMED
    r = api.post(url, b"", content_type="application/json", headers=headers)  # no body
    assert r.status_code == 200, r.json()
    assert r.json()["status"] == "cancelled"
