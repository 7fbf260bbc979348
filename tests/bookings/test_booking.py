"""Booking: slots, the database settling races, idempotency, transitions, notifications."""

import threading
from datetime import UTC, datetime, time, timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client

from bookings.models import Appointment, AvailabilityRule, BookingPolicy, StatusChange
from bookings.schemas import SlotsOut
from realtime.models import Notification
from tests.bookings.conftest import next_slot, weekly_hours
from tests.factories import bearer, login, make_user, post

pytestmark = pytest.mark.django_db


def book(api, user, doctor, start, mode="in_person", **headers):
    token = login(api, user.email)["access"]
    return post(
        api,
        "/api/v1/appointments",
        {"doctor_id": str(doctor.id), "start": start.isoformat(), "mode": mode},
        **bearer(token),
        **headers,
    )


def test_slots_in_the_viewers_time_zone(api, doctor_with_hours):
    day = next_slot().date()
    r = api.get(f"/api/v1/doctors/{doctor_with_hours.id}/slots?from={day}&to={day}&tz=Asia/Tokyo")
    assert r.status_code == 200
    body = r.json()
    assert body["time_zone"] == "Asia/Tokyo"
    assert body["items"], body
    first = body["items"][0]
    # Built without pydantic (core/responses.py): exactly the documented schema.
    assert SlotsOut.model_validate(body).model_dump(mode="json") == body
    assert first["start"].endswith("+09:00")
    assert first["start_utc"].endswith("Z") or first["start_utc"].endswith("+00:00")


@pytest.mark.parametrize(
    "query",
    [
        "from=2026-05-02&to=2026-05-01",
        "from=2026-01-01&to=2027-01-01",
        "from=2026-01-01&to=2026-01-02&tz=Mars/Base",
        "from=x&to=2026-01-01",
        "from=0&to=0",
        "from=0001-01-01&to=0001-01-02",  # a day either side of the calendar's ends
        "from=9999-12-30&to=9999-12-31",
    ],
)
def test_bad_slot_queries_are_422(api, doctor_with_hours, query):
    assert api.get(f"/api/v1/doctors/{doctor_with_hours.id}/slots?{query}").status_code == 422


def test_patient_books_doctor_and_patient_are_notified(
    api, doctor_with_hours, django_capture_on_commit_callbacks
):
    patient = make_user(first_name="Mona")
    start = next_slot()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        r = book(api, patient, doctor_with_hours, start)
    assert r.status_code == 201, r.json()
    assert r.json()["status"] == "confirmed"
    appt = Appointment.objects.get()
    assert appt.start == start
    assert list(StatusChange.objects.values_list("status", flat=True)) == ["confirmed"]
    assert set(Notification.objects.values_list("user_id", "kind")) == {
        (patient.id, "booking.created"),
        (doctor_with_hours.user_id, "booking.created"),
    }
    assert len(callbacks) >= 2  # the pushes leave after commit


@pytest.mark.parametrize(
    "case", ["off_boundary", "past", "outside_hours", "wrong_mode", "beyond_window"]
)
def test_unbookable_times_are_422(api, doctor_with_hours, case):
    start = next_slot()
    mode = "in_person"
    if case == "off_boundary":
        start += timedelta(minutes=7)
    elif case == "past":
        start = next_slot(days=-2)
    elif case == "outside_hours":
        start = next_slot(hour=20)
    elif case == "wrong_mode":
        mode = "chat"
    else:
        start = next_slot(days=90)
    r = book(api, make_user(), doctor_with_hours, start, mode=mode)
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "booking.slot_unavailable"


@pytest.mark.parametrize("start", ["9999-12-31T00:00:00Z", "0001-01-01T00:00:00+00:00"])
def test_a_start_at_the_calendars_ends_is_422_in_the_request_language(
    api, doctor_with_hours, start
):
    token = login(api, make_user().email)["access"]
    r = post(
        api,
        "/api/v1/appointments",
        {"doctor_id": str(doctor_with_hours.id), "start": start, "mode": "in_person"},
        **bearer(token),
        **{"Accept-Language": "ar"},
    )
    assert r.status_code == 422, r.content
    error = r.json()["error"]
    assert error["code"] == "request.invalid" and "start" in error["fields"]
    assert any("\u0600" <= ch <= "\u06ff" for ch in error["fields"]["start"])


def test_second_patient_gets_409_for_the_same_slot(api, doctor_with_hours):
    start = next_slot()
    assert book(api, make_user(), doctor_with_hours, start).status_code == 201
    r = book(api, make_user(), doctor_with_hours, start, **{"Accept-Language": "ar"})
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "booking.slot_taken"
    assert any("\u0600" <= ch <= "\u06ff" for ch in r.json()["error"]["message"])


def test_approval_flow_and_cancellation_policy(
    api, doctor_with_hours, django_capture_on_commit_callbacks
):
    BookingPolicy.objects.filter(doctor=doctor_with_hours).update(requires_approval=True)
    patient = make_user()
    r = book(api, patient, doctor_with_hours, next_slot(days=1, hour=9))
    assert r.json()["status"] == "pending"
    appt_id = r.json()["id"]
    doc_headers = bearer(login(api, doctor_with_hours.user.email)["access"])
    r = post(api, f"/api/v1/appointments/{appt_id}/accept", **doc_headers)
    assert r.status_code == 200 and r.json()["status"] == "confirmed"
    assert post(api, f"/api/v1/appointments/{appt_id}/accept", **doc_headers).status_code == 409
    # inside the 24 h cut-off the patient cannot cancel, the doctor can
    Appointment.objects.filter(id=appt_id).update(
        start=datetime.now(UTC) + timedelta(hours=2),
        end=datetime.now(UTC) + timedelta(hours=2, minutes=30),
    )
    patient_headers = bearer(login(api, patient.email)["access"])
    r = post(api, f"/api/v1/appointments/{appt_id}/cancel", {"reason": "busy"}, **patient_headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "booking.cancellation_too_late"
    r = post(
        api,
        f"/api/v1/appointments/{appt_id}/cancel",
        {"reason": "Emergency surgery"},
        **doc_headers,
    )
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    detail = api.get(f"/api/v1/appointments/{appt_id}", headers=patient_headers).json()
    assert [h["status"] for h in detail["history"]] == ["pending", "confirmed", "cancelled"]
    # the doctor's reason is read in the history (encrypted at rest), not in a notification
    # that may leave as an e-mail or a text message
    assert detail["history"][-1]["reason"] == "Emergency surgery"
    told = Notification.objects.get(user=patient, kind="booking.cancelled")
    assert "Emergency" not in told.body and "history" in told.body
    with connection.cursor() as cursor:
        cursor.execute("SELECT reason FROM bookings_statuschange WHERE reason <> ''")
        assert all(raw.startswith("enc1:") for (raw,) in cursor.fetchall())


def test_others_cannot_see_an_appointment(api, doctor_with_hours):
    r = book(api, make_user(), doctor_with_hours, next_slot())
    stranger = make_user()
    headers = bearer(login(api, stranger.email)["access"])
    assert api.get(f"/api/v1/appointments/{r.json()['id']}", headers=headers).status_code == 404
    assert api.get("/api/v1/appointments", headers=headers).json()["items"] == []


def test_reason_is_encrypted_at_rest(api, doctor_with_hours):
    patient = make_user()
    token = login(api, patient.email)["access"]
    post(
        api,
        "/api/v1/appointments",
        {
            "doctor_id": str(doctor_with_hours.id),
            "start": next_slot().isoformat(),
            "mode": "in_person",
            "reason": "chest pain",
        },
        **bearer(token),
    )
    with connection.cursor() as cursor:
        cursor.execute("SELECT reason FROM bookings_appointment")
        assert "chest" not in cursor.fetchone()[0]


def test_unverified_doctor_cannot_publish_availability(api):
    from tests.doctors.factories import doctor

    pending = doctor(verified=False)
    headers = bearer(login(api, pending.user.email)["access"])
    r = post(
        api,
        "/api/v1/availability/rules",
        {"weekday": 0, "start": "09:00", "end": "12:00", "mode": "video"},
        **headers,
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "booking.doctor_not_verified"


@pytest.mark.parametrize("start", ["09:00+05:00", 32400, "9:00", "24:00", "09:00:00.5", True])
def test_hours_are_wall_clock_times_without_a_zone(api, doctor_with_hours, start):
    headers = bearer(login(api, doctor_with_hours.user.email)["access"])
    body = {"weekday": 0, "start": start, "end": "19:00", "mode": "video"}
    r = post(api, "/api/v1/availability/rules", body, **headers, **{"Accept-Language": "ar"})
    assert r.status_code == 422, r.content
    assert any("\u0600" <= ch <= "\u06ff" for ch in r.json()["error"]["fields"]["start"])
    r = post(api, "/api/v1/availability/rules", {**body, "start": "18:00:00"}, **headers)
    assert r.status_code == 201 and r.json()["start"] == "18:00:00", r.content


def test_hours_and_bookings_only_in_the_modes_the_profile_offers(api, doctor_with_hours):
    headers = bearer(login(api, doctor_with_hours.user.email)["access"])
    r = api.patch(
        "/api/v1/doctor/profile",
        {"offers_video": False},
        content_type="application/json",
        headers=headers,
    )
    assert r.status_code == 200, r.content
    r = post(
        api,
        "/api/v1/availability/rules",
        {"weekday": 0, "start": "18:00", "end": "19:00", "mode": "video"},
        **headers,
        **{"Accept-Language": "ar"},
    )
    assert r.status_code == 422 and "mode" in r.json()["error"]["fields"]
    assert any("\u0600" <= ch <= "\u06ff" for ch in r.json()["error"]["fields"]["mode"])
    # the video hours published before are no longer offered, nor bookable
    day = next_slot(days=4).date()
    slots = api.get(f"/api/v1/doctors/{doctor_with_hours.id}/slots?from={day}&to={day}").json()
    assert {s["mode"] for s in slots["items"]} == {"in_person"}
    r = book(api, make_user(), doctor_with_hours, next_slot(days=4, hour=17), mode="video")
    assert r.status_code == 422 and r.json()["error"]["code"] == "booking.slot_unavailable"


def test_the_directory_finds_a_free_slot_in_the_mode_asked_for(
    api, doctor_with_hours, django_capture_on_commit_callbacks
):
    day = next_slot(days=5).date()
    url = f"/api/v1/doctors?available_on={day}"
    video = api.get(url + "&mode=video").json()["items"]
    assert [i["id"] for i in video] == [str(doctor_with_hours.id)]
    # the first free slot of the day is in person (09:00 Cairo); the first video one is later
    first_any = api.get(url).json()["items"][0]["next_available"]
    first_video = video[0]["next_available"]
    assert first_video > first_any
    slots = api.get(f"/api/v1/doctors/{doctor_with_hours.id}/slots?from={day}&to={day}").json()
    assert first_video == min(s["start_utc"] for s in slots["items"] if s["mode"] == "video")
    # a doctor whose only hours that day are in person is not a video doctor that day (and
    # the change of hours invalidates the cached page at once)
    with django_capture_on_commit_callbacks(execute=True):
        doctor_with_hours.availability_rules.filter(mode="video").delete()
    r = api.get(url + "&mode=video")
    assert r.json()["items"] == [] and r["Cache-Control"] == "public, max-age=6"
    assert api.get(url).json()["items"]  # in person, cached now
    from zoneinfo import ZoneInfo

    cairo = ZoneInfo("Africa/Cairo")
    with django_capture_on_commit_callbacks(execute=True):
        doctor_with_hours.time_off.create(
            start=datetime.combine(day, time(0), tzinfo=cairo),
            end=datetime.combine(day + timedelta(days=1), time(0), tzinfo=cairo),
        )
    assert api.get(url).json()["items"] == []


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the exclusion constraint is PostgreSQL's"
)
def test_the_database_itself_refuses_an_overlapping_active_appointment(doctor_with_hours):
    start = next_slot()
    common = {"doctor": doctor_with_hours, "mode": "in_person", "status": "confirmed"}
    Appointment.objects.create(
        patient=make_user(), start=start, end=start + timedelta(minutes=30), **common
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Appointment.objects.create(
            patient=make_user(),
            start=start + timedelta(minutes=10),
            end=start + timedelta(minutes=40),
            **common,
        )
    # cancelled ones do not block
    Appointment.objects.create(
        patient=make_user(),
        start=start + timedelta(minutes=10),
        end=start + timedelta(minutes=40),
        **{**common, "status": "cancelled"},
    )


def _race(requests):
    """Send the prepared requests from one thread each, released together by a barrier."""
    barrier = threading.Barrier(len(requests))
    results = [None] * len(requests)

    def run(i):
        client = Client()
        try:
            barrier.wait(timeout=30)
            results[i] = requests[i](client)
        finally:
            from django.db import connections

            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def _tokens(users, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "login": "1000/m/ip"}
    client = Client()
    return [login(client, u.email)["access"] for u in users]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="a race on real PostgreSQL connections"
)
def test_fifty_concurrent_requests_for_one_slot_give_one_booking(doctor_with_hours, settings):
    start = next_slot()
    tokens = _tokens([make_user() for _ in range(50)], settings)
    body = {"doctor_id": str(doctor_with_hours.id), "start": start.isoformat(), "mode": "in_person"}
    responses = _race(
        [lambda c, t=t: post(c, "/api/v1/appointments", body, **bearer(t)) for t in tokens]
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 1, statuses
    assert statuses.count(409) == 49, statuses
    assert all(
        r.json()["error"]["code"] == "booking.slot_taken" for r in responses if r.status_code == 409
    )
    assert Appointment.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="a race on real PostgreSQL connections"
)
def test_fifty_concurrent_requests_with_one_idempotency_key_create_one_booking(
    doctor_with_hours, settings
):
    start = next_slot()
    [token] = _tokens([make_user()], settings)
    body = {"doctor_id": str(doctor_with_hours.id), "start": start.isoformat(), "mode": "in_person"}
    responses = _race(
        [
            lambda c: post(
                c, "/api/v1/appointments", body, **bearer(token), **{"Idempotency-Key": "k-1"}
            )
            for _ in range(50)
        ]
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.content for r in responses}) == 1
    assert Appointment.objects.count() == 1


def test_same_key_with_another_body_is_422(api, doctor_with_hours):
    patient = make_user()
    token = login(api, patient.email)["access"]
    first = {
        "doctor_id": str(doctor_with_hours.id),
        "start": next_slot().isoformat(),
        "mode": "in_person",
    }
    assert (
        post(
            api, "/api/v1/appointments", first, **bearer(token), **{"Idempotency-Key": "k"}
        ).status_code
        == 201
    )
    again = post(api, "/api/v1/appointments", first, **bearer(token), **{"Idempotency-Key": "k"})
    assert again.status_code == 201 and Appointment.objects.count() == 1
    other = {**first, "start": next_slot(hour=11).isoformat()}
    r = post(api, "/api/v1/appointments", other, **bearer(token), **{"Idempotency-Key": "k"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "request.idempotency_mismatch"


def test_a_replay_stored_under_an_older_answer_schema_is_sent_as_stored(api, doctor_with_hours):
    """A release that adds a field to an answer must not make a retry across the deploy a 500
    for the key's 24 h: the replay was checked when it was first made."""
    from core.models import IdempotencyRecord

    patient = make_user()
    first = book(api, patient, doctor_with_hours, next_slot(), **{"Idempotency-Key": "k"})
    assert first.status_code == 201
    record = IdempotencyRecord.objects.get(user=patient)
    older = {k: v for k, v in record.body.items() if k != "mode"}  # an older answer schema
    IdempotencyRecord.objects.filter(pk=record.pk).update(body=older)
    again = book(api, patient, doctor_with_hours, next_slot(), **{"Idempotency-Key": "k"})
    assert again.status_code == 201 and again["Content-Type"] == "application/json"
    assert again.json() == older and Appointment.objects.count() == 1


def test_a_failed_request_leaves_its_idempotency_key_free(api, doctor_with_hours):
    """The key's claim is rolled back with the failed booking: the retry runs afresh (here
    with another body, which a used key would refuse with 422)."""
    from core.models import IdempotencyRecord

    start = next_slot()
    assert book(api, make_user(), doctor_with_hours, start).status_code == 201
    patient = make_user()
    taken = book(api, patient, doctor_with_hours, start, **{"Idempotency-Key": "k"})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "booking.slot_taken"
    assert not IdempotencyRecord.objects.filter(user=patient).exists()
    retry = book(api, patient, doctor_with_hours, next_slot(hour=11), **{"Idempotency-Key": "k"})
    assert retry.status_code == 201
    again = book(api, patient, doctor_with_hours, next_slot(hour=11), **{"Idempotency-Key": "k"})
    assert again.status_code == 201 and again.json()["id"] == retry.json()["id"]
    assert Appointment.objects.filter(patient=patient).count() == 1


def test_care_relationship(doctor_with_hours):
    from bookings.selectors import in_care

    patient, stranger = make_user(), make_user()
    start = next_slot()
    Appointment.objects.create(
        doctor=doctor_with_hours,
        patient=patient,
        mode="video",
        status="confirmed",
        start=start,
        end=start + timedelta(minutes=30),
    )
    assert in_care(doctor_user=doctor_with_hours.user, patient=patient)
    assert not in_care(doctor_user=doctor_with_hours.user, patient=stranger)


def test_reschedule_is_atomic_and_linked(api, doctor_with_hours):
    patient = make_user()
    first = book(api, patient, doctor_with_hours, next_slot()).json()
    other = book(api, make_user(), doctor_with_hours, next_slot(hour=11)).json()
    headers = bearer(login(api, patient.email)["access"])
    # onto a taken slot: 409 and nothing changes
    r = post(
        api, f"/api/v1/appointments/{first['id']}/reschedule", {"start": other["start"]}, **headers
    )
    assert r.status_code == 409
    assert Appointment.objects.get(id=first["id"]).status == "confirmed"
    # onto a free slot: the old one is cancelled and linked
    target = next_slot(hour=12)
    r = post(
        api,
        f"/api/v1/appointments/{first['id']}/reschedule",
        {"start": target.isoformat()},
        **headers,
    )
    assert r.status_code == 200, r.json()
    new = Appointment.objects.get(id=r.json()["id"])
    assert new.start == target and new.rescheduled_from_id is not None
    assert str(new.rescheduled_from_id) == first["id"]
    assert Appointment.objects.get(id=first["id"]).status == "cancelled"
    # the reason the platform wrote is shown in the reader's language
    url = f"/api/v1/appointments/{first['id']}"
    english = api.get(url, headers=headers).json()["history"][-1]
    arabic = api.get(url, headers={**headers, "Accept-Language": "ar"}).json()["history"][-1]
    assert (english["status"], english["reason"]) == ("cancelled", "rescheduled")
    assert arabic["reason"] == "أُعيدت جدولته"


@pytest.mark.parametrize("operation", ["reschedule", "rebook"])
def test_a_move_or_a_rebooking_replays_its_first_answer_for_the_same_key(
    api, doctor_with_hours, operation
):
    """Both make an appointment: a retry with the same Idempotency-Key and body gets the
    first answer (not a 409 for the slot it took itself); another body is 422."""
    patient = make_user()
    first = book(api, patient, doctor_with_hours, next_slot()).json()
    headers = {**bearer(login(api, patient.email)["access"]), "Idempotency-Key": "move-1"}
    url = f"/api/v1/appointments/{first['id']}/{operation}"
    body = {"start": next_slot(days=4).isoformat()}
    r1 = post(api, url, body, **headers)
    assert r1.status_code == (200 if operation == "reschedule" else 201), r1.json()
    r2 = post(api, url, body, **headers)
    assert (r2.status_code, r2.json()) == (r1.status_code, r1.json())
    assert Appointment.objects.filter(patient=patient).count() == 2
    r3 = post(api, url, {"start": next_slot(days=5).isoformat()}, **headers)
    assert r3.status_code == 422
    assert r3.json()["error"]["code"] == "request.idempotency_mismatch"


def _reschedule(api, appt_id, start, headers):
    return post(
        api, f"/api/v1/appointments/{appt_id}/reschedule", {"start": start.isoformat()}, **headers
    )


def test_a_move_keeps_what_was_granted_and_no_more(api, doctor_with_hours):
    """A request awaiting approval stays pending when its patient moves it (the doctor moving
    it is the doctor's answer); a slot held for payment cannot be moved at all."""
    BookingPolicy.objects.filter(doctor=doctor_with_hours).update(requires_approval=True)
    patient = make_user()
    headers = bearer(login(api, patient.email)["access"])
    pending = book(api, patient, doctor_with_hours, next_slot(hour=9)).json()
    assert pending["status"] == "pending"
    r = _reschedule(api, pending["id"], next_slot(hour=10), headers)
    assert r.status_code == 200 and r.json()["status"] == "pending", r.json()
    doctor_headers = bearer(login(api, doctor_with_hours.user.email)["access"])
    r = _reschedule(api, r.json()["id"], next_slot(hour=11), doctor_headers)
    assert r.status_code == 200 and r.json()["status"] == "confirmed", r.json()

    BookingPolicy.objects.filter(doctor=doctor_with_hours).update(
        requires_approval=False, payment_required=True
    )
    held = book(api, patient, doctor_with_hours, next_slot(days=4, hour=17), mode="video").json()
    assert held.get("status") == "held", held
    for who in (headers, doctor_headers):
        r = _reschedule(api, held["id"], next_slot(days=4, hour=18), who)
        assert r.status_code == 409 and r.json()["error"]["code"] == "booking.hold_not_movable"
    assert Appointment.objects.get(id=held["id"]).status == "held"
    assert not Appointment.objects.filter(rescheduled_from_id=held["id"]).exists()
    # an unpaid hold is released by its patient even inside the cut-off
    Appointment.objects.filter(id=held["id"]).update(
        start=datetime.now(UTC) + timedelta(hours=2),
        end=datetime.now(UTC) + timedelta(hours=2, minutes=30),
    )
    r = post(api, f"/api/v1/appointments/{held['id']}/cancel", {"reason": "changed"}, **headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"


def test_no_move_to_a_doctor_no_longer_bookable(api, doctor_with_hours):
    patient = make_user()
    headers = bearer(login(api, patient.email)["access"])
    appt = book(api, patient, doctor_with_hours, next_slot()).json()
    type(doctor_with_hours).objects.filter(pk=doctor_with_hours.pk).update(verification="rejected")
    r = _reschedule(api, appt["id"], next_slot(hour=12), headers)
    assert r.status_code == 422 and r.json()["error"]["code"] == "booking.doctor_not_bookable"
    assert Appointment.objects.get(id=appt["id"]).status == "confirmed"


def _helper(api, *codenames):
    from django.contrib.auth.models import Group, Permission

    from accounts.models import Role

    helper = make_user(role=Role.HELPER)
    group = Group.objects.create(name=f"support-{helper.pk}")
    for codename in codenames:
        group.permissions.add(
            Permission.objects.get(content_type__app_label="bookings", codename=codename)
        )
    helper.groups.add(group)
    return helper, bearer(login(api, helper.email)["access"])


def test_staff_who_may_only_see_appointments_cannot_change_them(api, doctor_with_hours):
    from audit.models import AuditEvent

    appt = book(api, make_user(), doctor_with_hours, next_slot()).json()
    _, viewer = _helper(api, "view_appointment")
    assert api.get(f"/api/v1/appointments/{appt['id']}", headers=viewer).status_code == 200
    r = post(api, f"/api/v1/appointments/{appt['id']}/cancel", {"reason": "x"}, **viewer)
    assert r.status_code == 403
    assert _reschedule(api, appt["id"], next_slot(hour=12), viewer).status_code == 403
    assert Appointment.objects.get(id=appt["id"]).status == "confirmed"

    helper, changer = _helper(api, "view_appointment", "change_appointment")
    # staff never move an appointment for its parties: the patient or the doctor does
    assert _reschedule(api, appt["id"], next_slot(hour=12), changer).status_code == 403
    r = post(
        api, f"/api/v1/appointments/{appt['id']}/cancel", {"reason": "clinic closed"}, **changer
    )
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    event = AuditEvent.objects.get(action="appointment.cancelled_by_staff")
    assert (event.actor_id, event.target_id) == (helper.pk, appt["id"])
    assert event.data == {"with_reason": True}  # the reason: in the history, encrypted


def test_doctor_marks_completed_only_after_the_start(api, doctor_with_hours):
    appt = book(api, make_user(), doctor_with_hours, next_slot()).json()
    headers = bearer(login(api, doctor_with_hours.user.email)["access"])
    assert post(api, f"/api/v1/appointments/{appt['id']}/complete", **headers).status_code == 409
    Appointment.objects.filter(id=appt["id"]).update(
        start=datetime.now(UTC) - timedelta(hours=1), end=datetime.now(UTC) - timedelta(minutes=30)
    )
    r = post(api, f"/api/v1/appointments/{appt['id']}/complete", **headers)
    assert r.status_code == 200 and r.json()["status"] == "completed"
    assert post(api, f"/api/v1/appointments/{appt['id']}/no-show", **headers).status_code == 409
    past = api.get("/api/v1/appointments?scope=past", headers=headers).json()["items"]
    assert [a["id"] for a in past] == [appt["id"]]


def test_doctor_manages_extra_hours_policy_and_rebooking(api, doctor_with_hours):
    headers = bearer(login(api, doctor_with_hours.user.email)["access"])
    day = next_slot(days=4).date()
    r = post(
        api,
        "/api/v1/availability/extra-hours",
        {"date": str(day), "start": "19:00", "end": "20:00", "mode": "video"},
        **headers,
    )
    assert r.status_code == 201, r.json()
    # video-only hours live in the profile zone (UTC for this doctor)
    slots = api.get(
        f"/api/v1/doctors/{doctor_with_hours.id}/slots?from={day}&to={day}&tz=UTC"
    ).json()["items"]
    assert any(s["start"].startswith(f"{day}T19:00") for s in slots)
    r = api.patch(
        "/api/v1/availability/policy",
        {"requires_approval": True, "window_days": 30},
        content_type="application/json",
        headers=headers,
    )
    assert r.status_code == 200 and r.json()["requires_approval"] is True
    assert (
        api.patch(
            "/api/v1/availability/policy",
            {"window_days": 0},
            content_type="application/json",
            headers=headers,
        ).status_code
        == 422
    )
    patient = make_user()
    first = book(api, patient, doctor_with_hours, next_slot(days=1)).json()
    p_headers = bearer(login(api, patient.email)["access"])
    r = post(
        api,
        f"/api/v1/appointments/{first['id']}/rebook",
        {"start": next_slot(days=2).isoformat()},
        **p_headers,
    )
    assert r.status_code == 201 and r.json()["status"] == "pending"
    assert r.json()["doctor_id"] == str(doctor_with_hours.id)


def test_directory_filters_by_availability_and_sorts_by_next_free_slot(api, doctor_with_hours):
    from bookings.models import TimeOff
    from tests.doctors.factories import doctor

    day = next_slot(days=5).date()
    busy = doctor()  # verified, no hours at all
    off = doctor()
    weekly_hours(off, time(9), time(10))
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Africa/Cairo")
    TimeOff.objects.create(
        doctor=off,
        start=datetime.combine(day, time(0), tzinfo=zone),
        end=datetime.combine(day, time(23, 59), tzinfo=zone),
    )
    r = api.get(f"/api/v1/doctors?available_on={day}")
    assert r.status_code == 200
    ids = [i["id"] for i in r.json()["items"]]
    assert ids == [str(doctor_with_hours.id)]
    assert r.json()["items"][0]["next_available"] is not None
    sorted_ids = [i["id"] for i in api.get("/api/v1/doctors?sort=next_available").json()["items"]]
    assert str(busy.id) not in sorted_ids and sorted_ids[0] in {
        str(doctor_with_hours.id),
        str(off.id),
    }


def test_a_search_by_availability_keeps_the_order_asked_for(api, doctor_with_hours):
    from tests.doctors.factories import doctor

    cheap = doctor(fee_minor=10000, last_name="Aziz")
    weekly_hours(cheap, time(9), time(12))
    type(cheap).objects.filter(pk=doctor_with_hours.pk).update(
        fee_minor=50000, rating_sum=9, rating_count=2
    )
    day = next_slot(days=5).date()
    near = "&lat=30.0444&lng=31.2357&radius_km=50"
    for query, first in (
        ("", doctor_with_hours),  # by rating
        ("&sort=fee", cheap),
        ("&sort=name", cheap),  # Aziz before Doctor<n>
        ("&sort=rating" + near, doctor_with_hours),
        ("&sort=fee" + near, cheap),
    ):
        items = api.get(f"/api/v1/doctors?available_on={day}{query}").json()["items"]
        assert [i["id"] for i in items][:1] == [str(first.id)], query
        assert len(items) == 2 and all(i["next_available"] for i in items), query


def test_a_search_by_availability_finds_a_free_doctor_ranked_low(
    api, doctor_with_hours, monkeypatch
):
    """Candidates are looked at a batch at a time until the page is full: a free doctor
    behind better-rated ones that have no hours at all, or no free time that day, is found
    (only the first 200 candidates were looked at)."""
    from doctors import selectors as directory
    from tests.doctors.factories import doctor

    monkeypatch.setattr(directory, "AVAILABILITY_CANDIDATES", 2)
    type(doctor_with_hours).objects.filter(pk=doctor_with_hours.pk).update(
        rating_sum=3, rating_count=1
    )
    day = next_slot(days=5).date()
    with_hours = {str(doctor_with_hours.id)}
    for n in range(5):
        better = doctor(rating_sum=5, rating_count=1)
        if n % 2:  # hours, but on another weekday
            with_hours.add(str(better.id))
            AvailabilityRule.objects.create(
                doctor=better,
                weekday=(day.weekday() + 1) % 7,
                start=time(9),
                end=time(12),
                mode="in_person",
                clinic=better.clinics.get(),
            )
    items = api.get(f"/api/v1/doctors?available_on={day}").json()["items"]
    assert [i["id"] for i in items] == [str(doctor_with_hours.id)]
    items = api.get("/api/v1/doctors?sort=next_available").json()["items"]  # the next 14 days
    assert {i["id"] for i in items} == with_hours


def test_time_off_and_unverified_doctors_are_not_bookable(api, doctor_with_hours):
    from bookings.models import TimeOff
    from tests.doctors.factories import doctor

    start = next_slot(days=6)
    TimeOff.objects.create(
        doctor=doctor_with_hours, start=start - timedelta(hours=1), end=start + timedelta(hours=1)
    )
    r = book(api, make_user(), doctor_with_hours, start, **{"Accept-Language": "ar"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "booking.slot_unavailable"
    assert any("\u0600" <= ch <= "\u06ff" for ch in r.json()["error"]["message"])
    pending = doctor(verified=False)
    r = book(api, make_user(), pending, next_slot())
    assert r.status_code == 422 and r.json()["error"]["code"] == "booking.doctor_not_bookable"
    assert (
        api.get(f"/api/v1/doctors/{pending.id}/slots?from=2026-12-01&to=2026-12-02").status_code
        == 422
    )


def test_each_hours_source_keeps_its_own_buffer(api, doctor_with_hours):

    # Another source with a 30-minute buffer must not take slots from the video hours.
    AvailabilityRule.objects.create(
        doctor=doctor_with_hours,
        clinic=None,
        mode="chat",
        weekday=0,
        start=time(6),
        end=time(7),
        slot_minutes=30,
        buffer_minutes=30,
    )
    day = next_slot(days=3).date()
    video = [
        s
        for s in api.get(
            f"/api/v1/doctors/{doctor_with_hours.id}/slots?from={day}&to={day}&tz=UTC"
        ).json()["items"]
        if s["mode"] == "video"
    ]
    first, second = (datetime.fromisoformat(s["start"]) for s in video[:2])
    assert second - first == timedelta(minutes=30)
    assert book(api, make_user(), doctor_with_hours, first, mode="video").status_code == 201
    r = book(api, make_user(), doctor_with_hours, second, mode="video")
    assert r.status_code == 201, r.json()


def test_a_patient_with_another_appointment_then_is_told_so(api, doctor_with_hours):
    from tests.doctors.factories import doctor

    other = doctor()
    from bookings.models import BookingPolicy

    for weekday in range(7):
        AvailabilityRule.objects.create(
            doctor=other,
            clinic=other.clinics.get(),
            mode="in_person",
            weekday=weekday,
            start=time(9),
            end=time(13),
            slot_minutes=30,
        )
    BookingPolicy.objects.create(doctor=other, min_notice_minutes=0)
    patient = make_user()
    start = next_slot()
    assert book(api, patient, doctor_with_hours, start).status_code == 201
    r = book(api, patient, other, start)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "booking.patient_busy"
    assert book(api, make_user(), other, start).status_code == 201


def test_a_deadlock_on_the_constraint_is_a_lost_race_not_a_500(doctor_with_hours, monkeypatch):
    """PostgreSQL may answer 40P01 to one of two conflicting inserts: that is slot_taken."""
    import psycopg
    from django.db import OperationalError

    from bookings import services
    from bookings.errors import SlotTaken

    def deadlock(appointment, **options):
        cause = psycopg.errors.DeadlockDetected("deadlock detected")
        raise OperationalError("deadlock detected") from cause

    monkeypatch.setattr(services.db, "insert", deadlock)
    with pytest.raises(SlotTaken):
        services.appointment_book(
            patient=make_user(), doctor_id=doctor_with_hours.id, start=next_slot(), mode="in_person"
        )


def test_an_expired_hold_in_the_way_is_released_at_booking(api, doctor_with_hours):
    """A hold past its expiry blocks nothing: the insert that meets it releases it and runs
    again (the database constraint still counts it until then); a live hold is a 409."""
    from tests.doctors.factories import doctor

    start = next_slot(hour=10)
    now = datetime.now(UTC)
    holder = make_user()

    def hold(doctor, patient, at, expires_in, mode="in_person"):
        return Appointment.objects.create(
            doctor=doctor,
            patient=patient,
            mode=mode,
            start=at,
            end=at + timedelta(minutes=30),
            status="held",
            hold_expires_at=now + expires_in,
        )

    expired = hold(doctor_with_hours, holder, start, timedelta(minutes=-1))
    live = hold(doctor_with_hours, holder, start + timedelta(minutes=30), timedelta(minutes=10))
    patient = make_user()
    r = book(api, patient, doctor_with_hours, start)
    assert r.status_code == 201, r.content
    expired.refresh_from_db()
    live.refresh_from_db()
    assert (expired.status, live.status) == ("cancelled", "held")
    r = book(api, make_user(), doctor_with_hours, start + timedelta(minutes=30))
    assert r.status_code == 409 and r.json()["error"]["code"] == "booking.slot_taken"
    # The patient's own expired hold with another doctor is released the same way.
    other = doctor()
    video = datetime.combine(start.date(), time(15), tzinfo=UTC)  # the doctor's zone: UTC
    mine = hold(other, patient, video, timedelta(seconds=-1), mode="video")
    r = book(api, patient, doctor_with_hours, video, mode="video")
    assert r.status_code == 201, r.content
    mine.refresh_from_db()
    assert mine.status == "cancelled"


def test_in_care_gives_the_same_answers_as_the_rule_as_a_queryset(db):
    """``in_care`` is hand-written SQL; ``_in_care`` is the rule as a queryset (the lists use
    it). Every status, ends on both sides of the care window, the wrong doctor, the wrong
    patient: the same answer from both."""
    from bookings.selectors import _in_care, in_care
    from tests.doctors.factories import doctor

    now = datetime.now(UTC)
    window = timedelta(days=90)
    ends = (
        now + timedelta(days=2),
        now - window + timedelta(seconds=1),
        now - window,
        now - window - timedelta(seconds=1),
    )
    doctors, patients = [], []
    for status in ("held", "pending", "confirmed", "completed", "cancelled", "rejected", "no_show"):
        doctors.append(doctor())  # one each: active ones may not overlap
        for end in ends:
            patients.append(make_user())
            Appointment.objects.create(
                doctor=doctors[-1],
                patient=patients[-1],
                mode="video",
                status=status,
                start=end - timedelta(seconds=1),
                end=end,
            )
    answers = []
    for patient in patients:
        for who in doctors[2:4]:  # confirmed and completed: the others' answers are all False
            for as_ids in (False, True):
                got = in_care(
                    doctor_user=who.user_id if as_ids else who.user,
                    patient=patient.pk if as_ids else patient,
                    now=now,
                )
                rule = _in_care(now).filter(doctor__user=who.user, patient=patient).exists()
                assert got == rule, (patient, who, as_ids)
                answers.append(got)
    for patient in patients[:8]:  # held and pending
        assert not in_care(doctor_user=doctors[patients.index(patient) // 4].user, patient=patient)
    assert answers.count(True) == 2 * 3 * 2  # two statuses, three ends inside, users and ids
    # a doctor whose verification is withdrawn is in care with nobody, by both
    withdrawn, patient = doctors[3], patients[13]  # completed, ended inside the window
    assert in_care(doctor_user=withdrawn.user, patient=patient, now=now)
    type(withdrawn).objects.filter(pk=withdrawn.pk).update(verification="rejected")
    assert not in_care(doctor_user=withdrawn.user, patient=patient, now=now)
    assert not _in_care(now).filter(doctor__user=withdrawn.user, patient=patient).exists()


def test_a_booking_reads_the_policy_with_the_doctor_and_a_doctor_without_one_gets_defaults(
    api, doctor_with_hours
):
    from django.test.utils import CaptureQueriesContext

    patient = make_user()
    token = login(api, patient.email)["access"]
    body = {"doctor_id": str(doctor_with_hours.id), "start": next_slot(hour=11).isoformat()}
    body["mode"] = "in_person"
    with CaptureQueriesContext(connection) as queries:
        r = post(api, "/api/v1/appointments", body, **bearer(token))
    assert r.status_code == 201, r.json()
    policy_reads = [
        q["sql"] for q in queries.captured_queries if "bookings_bookingpolicy" in q["sql"]
    ]
    assert len(policy_reads) == 1 and "doctors_doctorprofile" in policy_reads[0]  # one join

    BookingPolicy.objects.filter(doctor=doctor_with_hours).delete()
    # the defaults apply (a minimum notice of 60 minutes), and reading them writes nothing
    from bookings import selectors

    day = next_slot().date()
    assert api.get(f"/api/v1/doctors/{doctor_with_hours.id}/slots?from={day}&to={day}").json()[
        "items"
    ]
    defaults = selectors.policy_for(selectors.bookable_doctor(doctor_with_hours.id))
    assert defaults._state.adding and defaults.min_notice_minutes == 60  # unsaved defaults
    assert not BookingPolicy.objects.filter(doctor=doctor_with_hours).exists()
    r = book(api, make_user(), doctor_with_hours, next_slot(hour=12))
    assert r.status_code == 201, r.json()
    assert not BookingPolicy.objects.filter(doctor=doctor_with_hours).exists()


def test_a_clinic_with_upcoming_appointments_is_not_removed(api, doctor_with_hours):
    clinic = doctor_with_hours.clinics.get()
    patient = make_user()
    upcoming = book(api, patient, doctor_with_hours, next_slot()).json()
    headers = bearer(login(api, doctor_with_hours.user.email)["access"])
    url = f"/api/v1/doctor/clinics/{clinic.id}"
    r = api.delete(url, headers={**headers, "Accept-Language": "ar"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "directory.clinic_in_use"
    assert any("\u0600" <= ch <= "\u06ff" for ch in r.json()["error"]["message"])
    assert Appointment.objects.get(id=upcoming["id"]).clinic_id == clinic.id
    # cancelled first: the clinic goes, the history stays without it
    post(api, f"/api/v1/appointments/{upcoming['id']}/cancel", {"reason": "moving"}, **headers)
    assert api.delete(url, headers=headers).status_code == 204
    kept = Appointment.objects.get(id=upcoming["id"])
    assert kept.clinic_id is None and kept.status == "cancelled"


def test_a_time_of_the_week_is_offered_once(api, doctor_with_hours):
    """Overlapping hours of another mode or clinic would never be bookable (the slot list
    keeps one source's slots): they are refused, in the request's language. Hours are
    compared as instants: this doctor's clinic hours are 09:00-13:00 Cairo, their video
    hours 14:00-17:00 in their profile zone (UTC)."""
    headers = bearer(login(api, doctor_with_hours.user.email)["access"])
    rules = "/api/v1/availability/rules"

    def rule(start, end, **extra):
        body = {"weekday": 2, "start": start, "end": end, "mode": "video"}
        return post(api, rules, body, **headers, **extra)

    r = rule("06:30", "07:30", **{"Accept-Language": "ar"})  # 08:30-09:30 Cairo, or 09:30-10:30
    assert r.status_code == 422 and "09:00-13:00" in r.json()["error"]["fields"]["start"]
    assert any("\u0600" <= ch <= "\u06ff" for ch in r.json()["error"]["fields"]["start"])
    # 12:00-13:00 UTC is after the clinic's hours in Cairo, and ends where the video hours
    # begin (touching is fine)
    assert rule("12:00", "13:00").status_code == 201
    day = next_slot(days=1).date()
    while day.weekday() != 2:
        day += timedelta(days=1)
    extra = "/api/v1/availability/extra-hours"
    one_off = {"date": str(day), "mode": "video"}
    r = post(api, extra, {**one_off, "start": "10:00", "end": "11:00"}, **headers)
    assert r.status_code == 422 and "start" in r.json()["error"]["fields"]  # 12:00 Cairo
    assert (
        post(api, extra, {**one_off, "start": "20:00", "end": "21:00"}, **headers).status_code
        == 201
    )
    assert (
        post(api, extra, {**one_off, "start": "20:30", "end": "22:00"}, **headers).status_code
        == 422
    )
    # and a new weekly rule meets those one-off hours on that date
    r = rule("20:15", "20:45")
    assert r.status_code == 422 and "20:00-21:00" in r.json()["error"]["fields"]["start"]


def test_a_booking_or_move_by_an_account_closed_meanwhile_says_so(doctor_with_hours):
    """The account was closed while the request ran (after its token was checked): the
    refusal names the account, not the doctor, who is perfectly bookable."""
    from accounts.errors import AccountInactive
    from accounts.models import User
    from bookings import services
    from bookings.errors import DoctorNotBookable

    patient = make_user()
    old = services.appointment_book(
        patient=patient, doctor_id=doctor_with_hours.id, start=next_slot(), mode="in_person"
    )
    User.objects.filter(pk=patient.pk).update(is_active=False)  # `patient` is the stale snapshot
    with pytest.raises(AccountInactive):
        services.appointment_book(
            patient=patient, doctor_id=doctor_with_hours.id, start=next_slot(hour=11),
            mode="in_person",
        )  # fmt: skip
    with pytest.raises(AccountInactive):
        services.appointment_reschedule(
            user=patient, appointment_id=old.id, start=next_slot(hour=12)
        )
    User.objects.filter(pk=patient.pk).update(is_active=True)
    type(doctor_with_hours).objects.filter(pk=doctor_with_hours.pk).update(verification="rejected")
    with pytest.raises(DoctorNotBookable):
        services.appointment_book(
            patient=patient, doctor_id=doctor_with_hours.id, start=next_slot(hour=11),
            mode="in_person",
        )  # fmt: skip
    assert Appointment.objects.count() == 1
