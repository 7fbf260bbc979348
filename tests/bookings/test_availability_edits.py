"""One-off hours and time off are changed in place (``PATCH``) by their owner only, checked
exactly as new ones are: hours that meet other hours are refused, time off stretched over an
appointment is refused until the doctor cancels or moves it; errors in the request's
language. And an ``Idempotency-Key`` holding control characters is refused, not a 500."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from bookings import services
from bookings.models import ExtraHours, TimeOff
from tests.bookings.conftest import next_slot
from tests.bookings.test_availability import EXTRA, OFF, auth, error
from tests.bookings.test_booking import book
from tests.doctors.factories import doctor
from tests.factories import make_user, post

pytestmark = pytest.mark.django_db
NOBODY = "00000000-0000-0000-0000-000000000000"


def patch(api, path, body, headers):
    return api.patch(path, body, content_type="application/json", headers=headers)


def is_arabic(text: str) -> bool:
    return any("\u0600" <= ch <= "\u06ff" for ch in text) and not any(
        "a" <= ch <= "z" for ch in text.lower()
    )


def video_slots(api, profile, day) -> list[datetime]:
    r = api.get(f"/api/v1/doctors/{profile.id}/slots?from={day}&to={day}&tz=UTC")
    assert r.status_code == 200, r.content
    return [
        datetime.fromisoformat(s["start_utc"]) for s in r.json()["items"] if s["mode"] == "video"
    ]


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=UTC)


def test_one_off_hours_are_changed_by_their_owner_and_shown_at_once(
    api, doctor_with_hours, django_capture_on_commit_callbacks
):
    me, other = auth(api, doctor_with_hours.user), auth(api, doctor().user)
    day = next_slot(days=5).date()
    made = post(api, EXTRA, {"date": str(day), "start": "20:00", "end": "21:00", "mode": "video"},
                **me).json()  # fmt: skip
    url = f"{EXTRA}/{made['id']}"
    assert at(day, 20) in video_slots(api, doctor_with_hours, day)  # the schedule is cached
    # meeting where it stood before (its own old hours) is no overlap
    with django_capture_on_commit_callbacks(execute=True):
        r = patch(api, url, {"start": "20:30", "end": "22:30", "slot_minutes": 45}, me)
    assert r.status_code == 200, r.json()
    assert r.json() == {**made, "start": "20:30:00", "end": "22:30:00", "slot_minutes": 45}
    listed = video_slots(api, doctor_with_hours, day)
    assert at(day, 20) not in listed and {at(day, 20, 30), at(day, 21, 15)} <= set(listed)
    with django_capture_on_commit_callbacks(execute=True):
        r = patch(api, url, {"date": str(day + timedelta(days=1))}, me)
    assert r.status_code == 200 and r.json()["date"] == str(day + timedelta(days=1)), r.json()
    assert at(day, 20, 30) not in video_slots(api, doctor_with_hours, day)
    # someone else's or nobody's: 404, and nothing changed; a patient: 403
    for who, extra_id in ((other, made["id"]), (me, NOBODY)):
        r = patch(api, f"{EXTRA}/{extra_id}", {"end": "23:00"}, who)
        assert error(r)[:2] == (404, "booking.hours_not_found")
    assert ExtraHours.objects.get().end == time(22, 30)
    r = patch(api, url, {"end": "23:00"}, auth(api, make_user()))
    assert error(r)[:2] == (403, "auth.role_required")


@pytest.mark.parametrize(
    "change, field",
    [
        ({"start": "16:00"}, "start"),  # meets the weekly video hours 14:00-17:00
        ({"slot_minutes": 90}, "slot_minutes"),  # longer than the hours
        ({"end": "20:00"}, "end"),  # ends as it starts
        ({"mode": "in_person"}, "clinic_id"),  # in person without a clinic
        ({"mode": "chat"}, "mode"),  # a mode the profile does not offer
        ({"clinic_id": NOBODY}, "clinic_id"),  # not the doctor's clinic
    ],
)
def test_one_off_hours_changed_into_what_could_not_be_created_are_refused_in_arabic(
    api, doctor_with_hours, change, field
):
    me = auth(api, doctor_with_hours.user, **{"Accept-Language": "ar"})
    day = next_slot(days=5).date()
    made = post(api, EXTRA, {"date": str(day), "start": "20:00", "end": "21:00", "mode": "video"},
                **me).json()  # fmt: skip
    status, code, fields = error(patch(api, f"{EXTRA}/{made['id']}", change, me))
    assert (status, code, list(fields)) == (422, "request.invalid", [field])
    assert is_arabic(fields[field]), fields
    assert (ExtraHours.objects.get().start, ExtraHours.objects.get().end) == (time(20), time(21))


def test_one_off_hours_moved_ahead_count_against_the_hours_kept_to_come(
    api, doctor_with_hours, monkeypatch
):
    monkeypatch.setattr(services, "MAX_EXTRA_HOURS", 1)
    me = auth(api, doctor_with_hours.user)
    day = next_slot(days=5).date()
    past = ExtraHours.objects.create(
        doctor=doctor_with_hours, mode="video", date=day - timedelta(days=30), start=time(20),
        end=time(21),
    )  # fmt: skip
    ahead = post(api, EXTRA, {"date": str(day), "start": "20:00", "end": "21:00", "mode": "video"},
                 **me).json()  # fmt: skip
    # the one to come may change; the one gone may not come back while the other is kept
    assert patch(api, f"{EXTRA}/{ahead['id']}", {"end": "22:00"}, me).status_code == 200
    r = patch(api, f"{EXTRA}/{past.id}", {"date": str(day + timedelta(days=1))}, me)
    assert error(r)[:2] == (422, "request.invalid") and "1" in r.json()["error"]["message"]
    past.refresh_from_db()
    assert past.date == day - timedelta(days=30)


def test_time_off_is_changed_by_its_owner_and_takes_the_slots_it_now_covers(api, doctor_with_hours):
    me, other = auth(api, doctor_with_hours.user), auth(api, doctor().user)
    day = next_slot(days=5).date()
    made = post(api, OFF, {"start": at(day, 14).isoformat(), "end": at(day, 15).isoformat(),
                           "reason": "conference"}, **me).json()  # fmt: skip
    url = f"{OFF}/{made['id']}"
    assert at(day, 15) in video_slots(api, doctor_with_hours, day)
    r = patch(api, url, {"end": at(day, 16).isoformat()}, me)
    assert r.status_code == 200, r.json()
    assert {**r.json(), "end": datetime.fromisoformat(r.json()["end"])} == {
        **made,
        "end": at(day, 16),
    }
    listed = video_slots(api, doctor_with_hours, day)
    assert at(day, 15, 30) not in listed and at(day, 16) in listed
    r = patch(api, url, {"reason": ""}, me)
    assert r.status_code == 200 and r.json()["reason"] == "", r.json()
    for who, off_id in ((other, made["id"]), (me, NOBODY)):
        r = patch(api, f"{OFF}/{off_id}", {"end": at(day, 17).isoformat()}, who)
        assert error(r)[:2] == (404, "booking.hours_not_found")
    assert TimeOff.objects.get().end == at(day, 16)
    r = patch(api, url, {"reason": "x"}, auth(api, make_user()))
    assert error(r)[:2] == (403, "auth.role_required")


def test_time_off_stretched_over_an_appointment_is_refused_until_it_is_cancelled(
    api, doctor_with_hours
):
    patient = make_user()
    start = next_slot(days=3, hour=10)
    booked = book(api, patient, doctor_with_hours, start).json()
    me = auth(api, doctor_with_hours.user, **{"Accept-Language": "ar"})
    made = post(api, OFF, {"start": (start - timedelta(hours=2)).isoformat(),
                           "end": start.isoformat()}, **me).json()  # fmt: skip
    url = f"{OFF}/{made['id']}"
    # stretched, or moved, over the appointment
    for change in (
        {"end": (start + timedelta(minutes=1)).isoformat()},
        {"start": (start + timedelta(minutes=29)).isoformat(),
         "end": (start + timedelta(hours=1)).isoformat()},
    ):  # fmt: skip
        r = patch(api, url, change, me)
        assert error(r) == (409, "booking.time_off_conflict", {"appointments": [booked["id"]]})
        assert "ألغ" in r.json()["error"]["message"]
    assert TimeOff.objects.get().end == start
    services.appointment_cancel(user=doctor_with_hours.user, appointment_id=booked["id"])
    r = patch(api, url, {"end": (start + timedelta(hours=1)).isoformat()}, me)
    assert r.status_code == 200, r.json()


@pytest.mark.parametrize(
    "change",
    [
        {"end": "2029-12-31T00:00:00Z"},  # before its start
        {"end": "2030-01-01T00:00:00Z"},  # empty
        {"start": "2020-01-01T00:00:00Z", "end": "2020-02-01T00:00:00Z"},  # over already
        {"end": "2199-01-01T00:00:00Z"},  # over two years
    ],
)
def test_time_off_changed_into_what_makes_no_sense_is_refused(api, doctor_with_hours, change):
    me = auth(api, doctor_with_hours.user, **{"Accept-Language": "ar"})
    made = post(api, OFF, {"start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z"},
                **me).json()  # fmt: skip
    status, code, fields = error(patch(api, f"{OFF}/{made['id']}", change, me))
    assert (status, code, list(fields)) == (422, "request.invalid", ["end"])
    assert is_arabic(fields["end"]), fields
    assert TimeOff.objects.get().end == datetime(2030, 1, 2, tzinfo=UTC)


def test_a_closed_account_changes_no_time_off(api, doctor_with_hours):
    made = TimeOff.objects.create(
        doctor=doctor_with_hours, start=datetime(2030, 1, 1, tzinfo=UTC),
        end=datetime(2030, 1, 2, tzinfo=UTC),
    )  # fmt: skip
    user = doctor_with_hours.user
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    from accounts.errors import AccountInactive

    with pytest.raises(AccountInactive):
        services.time_off_update(user=user, time_off_id=made.id, changes={"reason": "x"})
    made.refresh_from_db()
    assert made.reason == ""


@pytest.mark.parametrize("key", ["a\x00b", "\x00", "tab\there", "bell\x07", "del\x7f"])
def test_an_idempotency_key_with_control_characters_is_422_not_500(api, doctor_with_hours, key):
    me = auth(api, doctor_with_hours.user, **{"Idempotency-Key": key, "Accept-Language": "ar"})
    body = {"start": "2030-01-01T00:00:00Z", "end": "2030-01-02T00:00:00Z"}
    status, code, fields = error(post(api, OFF, body, **me))
    assert (status, code, list(fields)) == (422, "request.invalid", ["Idempotency-Key"])
    assert is_arabic(fields["Idempotency-Key"].replace("Idempotency-Key", "")), fields
    r = book(api, make_user(), doctor_with_hours, next_slot(), **{"Idempotency-Key": key})
    assert error(r)[:2] == (422, "request.invalid")
    assert not TimeOff.objects.exists()
    # printable keys, spaces and Latin-1 letters among them, are kept as before
    me["Idempotency-Key"] = "key one é"
    assert post(api, OFF, body, **me).status_code == post(api, OFF, body, **me).status_code == 201
    assert TimeOff.objects.count() == 1
