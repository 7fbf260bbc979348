"""A doctor's hours and time off: listed, changed and removed by their owner only, checked
as a whole (a slot fits its hours, in-person hours have a clinic, nothing overlaps, even in
a mode turned off or a year ahead), and time off never strands a booked patient."""

from datetime import UTC, date, datetime, time, timedelta

import pytest

from bookings import services
from bookings.models import AvailabilityRule, ExtraHours, TimeOff
from tests.bookings.conftest import next_slot
from tests.doctors.factories import doctor
from tests.factories import bearer, login, make_user, post

pytestmark = pytest.mark.django_db
RULES, EXTRA, OFF = (f"/api/v1/availability/{p}" for p in ("rules", "extra-hours", "time-off"))


def auth(api, user, **more):
    return {**bearer(login(api, user.email)["access"]), **more}


def error(r) -> tuple[int, str, dict]:
    body = r.json()["error"]
    return r.status_code, body["code"], body["fields"]


def test_hours_and_time_off_are_listed_changed_and_removed_by_their_owner(api, doctor_with_hours):
    me, other = auth(api, doctor_with_hours.user), auth(api, doctor().user)
    listed = api.get(RULES, headers=me).json()
    assert listed["next"] is None and len(listed["items"]) == 14  # in person and video, 7 days
    first = listed["items"][0]
    assert (first["weekday"], first["start"]) == (0, "09:00:00")
    assert api.get(RULES, headers=other).json()["items"] == []
    # change one rule's end; the others are left alone, and its neighbours still refuse it
    monday_video = next(r for r in listed["items"] if r["weekday"] == 0 and r["mode"] == "video")
    r = api.patch(
        f"{RULES}/{monday_video['id']}", {"end": "18:00"}, content_type="application/json",
        headers=me,
    )  # fmt: skip
    assert r.status_code == 200 and r.json()["end"] == "18:00:00", r.json()
    assert AvailabilityRule.objects.get(id=monday_video["id"]).end == time(18)
    r = api.patch(
        f"{RULES}/{monday_video['id']}",
        {"start": "10:00"},
        content_type="application/json",
        headers=me,
    )  # fmt: skip  (video 10:00-18:00 UTC meets in person 09:00-13:00 Cairo, 07:00-11:00 UTC)
    assert error(r)[:2] == (422, "request.invalid") and "start" in error(r)[2]
    # someone else's or nobody's hours: 404, and nothing removed
    for who, rule_id in ((other, monday_video["id"]), (me, "00000000-0000-0000-0000-000000000000")):
        assert api.delete(f"{RULES}/{rule_id}", headers=who).status_code == 404
        r = api.patch(f"{RULES}/{rule_id}", {}, content_type="application/json", headers=who)
        assert r.status_code == 404
    assert AvailabilityRule.objects.filter(doctor=doctor_with_hours).count() == 14
    assert api.delete(f"{RULES}/{monday_video['id']}", headers=me).status_code == 204
    assert AvailabilityRule.objects.filter(doctor=doctor_with_hours).count() == 13

    day = (datetime.now(UTC) + timedelta(days=9)).date()
    off = [
        post(api, OFF, {"start": f"{day + timedelta(days=i)}T00:00:00Z",
                        "end": f"{day + timedelta(days=i + 1)}T00:00:00Z"}, **me).json()
        for i in (2, 0, 1)
    ]  # fmt: skip
    page = api.get(f"{OFF}?limit=2", headers=me).json()
    assert [t["id"] for t in page["items"]] == [off[1]["id"], off[2]["id"]]  # by start
    rest = api.get(f"{OFF}?limit=2&cursor={page['next']}", headers=me).json()
    assert [t["id"] for t in rest["items"]] == [off[0]["id"]] and rest["next"] is None
    assert api.delete(f"{OFF}/{off[0]['id']}", headers=other).status_code == 404
    assert api.delete(f"{OFF}/{off[0]['id']}", headers=me).status_code == 204
    assert TimeOff.objects.filter(doctor=doctor_with_hours).count() == 2

    extra = post(
        api, EXTRA, {"date": str(day), "start": "20:00", "end": "21:00", "mode": "video"}, **me
    )
    assert extra.status_code == 201, extra.json()
    assert [e["id"] for e in api.get(EXTRA, headers=me).json()["items"]] == [extra.json()["id"]]
    assert api.delete(f"{EXTRA}/{extra.json()['id']}", headers=other).status_code == 404
    assert api.delete(f"{EXTRA}/{extra.json()['id']}", headers=me).status_code == 204
    assert not ExtraHours.objects.exists()


def test_a_patient_is_refused_before_anything_is_checked(api):
    patient = auth(api, make_user())
    for path in (RULES, EXTRA, OFF):
        assert error(api.get(path, headers=patient))[:2] == (403, "auth.role_required")
    r = post(api, OFF, {"start": "2030-01-02T00:00:00Z", "end": "2030-01-01T00:00:00Z"}, **patient)
    assert r.status_code == 403


@pytest.mark.parametrize(
    "body, field",
    [
        ({"weekday": 0, "start": "21:00", "end": "22:00", "mode": "video", "slot_minutes": 90},
         "slot_minutes"),
        ({"weekday": 0, "start": "18:00", "end": "19:00", "mode": "in_person"}, "clinic_id"),
        ({"weekday": 0, "start": "19:00", "end": "18:00", "mode": "video"}, "end"),
        ({"weekday": 0, "start": "19:00", "end": "19:00", "mode": "video"}, "end"),
    ],
)  # fmt: skip
def test_hours_that_cannot_hold_a_slot_are_refused_in_the_request_language(
    api, doctor_with_hours, body, field
):
    me = auth(api, doctor_with_hours.user, **{"Accept-Language": "ar"})
    status, code, fields = error(post(api, RULES, body, **me))
    assert (status, code) == (422, "request.invalid") and list(fields) == [field]
    assert not any("a" <= ch <= "z" for ch in fields[field].lower()), fields  # Arabic
    extra = {**{k: v for k, v in body.items() if k != "weekday"}, "date": "2030-01-07"}
    assert error(post(api, EXTRA, extra, **me))[2].keys() == {field}


def test_hours_may_not_meet_hours_a_year_ahead_or_in_a_mode_turned_off(api, doctor_with_hours):
    me = auth(api, doctor_with_hours.user)
    far = datetime.now(UTC).date() + timedelta(days=400)  # video 14:00-17:00 every day, UTC
    r = post(
        api, EXTRA, {"date": str(far), "start": "15:00", "end": "16:00", "mode": "video"}, **me
    )
    assert error(r)[:2] == (422, "request.invalid") and "start" in error(r)[2]
    # hours in a mode turned off come back when it is turned on: they still count
    doctor_with_hours.offers_video = False
    doctor_with_hours.save()
    r = post(
        api,
        RULES,
        {
            "weekday": 2,
            "start": "16:00",
            "end": "18:00",
            "mode": "in_person",
            "clinic_id": str(doctor_with_hours.clinics.get().id),
        },
        **me,
    )  # fmt: skip  (16:00 Cairo is 14:00 UTC)
    assert error(r)[:2] == (422, "request.invalid"), r.json()


def test_time_off_never_strands_a_booked_patient(api, doctor_with_hours):
    patient = make_user()
    start = next_slot(days=3, hour=10)
    booked = services.appointment_book(
        patient=patient, doctor_id=doctor_with_hours.id, start=start, mode="in_person"
    )
    me = auth(api, doctor_with_hours.user, **{"Accept-Language": "ar"})
    body = {"start": (start - timedelta(hours=2)).isoformat(),
            "end": (start + timedelta(hours=2)).isoformat(), "reason": "conference"}  # fmt: skip
    r = post(api, OFF, body, **me)
    assert error(r) == (409, "booking.time_off_conflict", {"appointments": [str(booked.id)]})
    assert "ألغ" in r.json()["error"]["message"]
    assert not TimeOff.objects.exists()
    services.appointment_cancel(user=doctor_with_hours.user, appointment_id=booked.id)
    assert post(api, OFF, body, **me).status_code == 201


@pytest.mark.parametrize(
    "start, end",
    [
        ("2030-01-02T00:00:00Z", "2030-01-01T00:00:00Z"),  # backwards
        ("2030-01-01T00:00:00Z", "2030-01-01T00:00:00Z"),  # empty
        ("2020-01-01T00:00:00Z", "2020-02-01T00:00:00Z"),  # over already
        ("2030-01-01T00:00:00Z", "2199-01-01T00:00:00Z"),  # over two years
    ],
)
def test_time_off_that_makes_no_sense_is_refused(api, doctor_with_hours, start, end):
    me = auth(api, doctor_with_hours.user)
    status, code, fields = error(post(api, OFF, {"start": start, "end": end}, **me))
    assert (status, code, list(fields)) == (422, "request.invalid", ["end"])
    assert not TimeOff.objects.exists()


def test_creating_hours_or_time_off_twice_with_one_key_creates_them_once(api, doctor_with_hours):
    me = auth(api, doctor_with_hours.user, **{"Idempotency-Key": "k-1"})
    day = date.today() + timedelta(days=30)
    body = {"start": f"{day}T00:00:00Z", "end": f"{day + timedelta(days=1)}T00:00:00Z"}
    first, again = post(api, OFF, body, **me), post(api, OFF, body, **me)
    assert first.status_code == again.status_code == 201 and first.json() == again.json()
    assert TimeOff.objects.count() == 1
    other = {**body, "reason": "another"}  # the same key, another body
    assert error(post(api, OFF, other, **me))[:2] == (422, "request.idempotency_mismatch")
    rule = {"weekday": 0, "start": "20:00", "end": "21:00", "mode": "video"}
    me["Idempotency-Key"] = "k-2"
    assert post(api, RULES, rule, **me).json() == post(api, RULES, rule, **me).json()
    assert AvailabilityRule.objects.filter(start=time(20)).count() == 1


def test_a_doctor_keeps_a_bounded_number_of_rules(api, doctor_with_hours, monkeypatch):
    monkeypatch.setattr(services, "MAX_RULES", 15)
    me = auth(api, doctor_with_hours.user)
    rule = {"weekday": 0, "start": "20:00", "end": "21:00", "mode": "video"}
    assert post(api, RULES, rule, **me).status_code == 201  # the 15th
    r = post(api, RULES, {**rule, "weekday": 1}, **me)
    assert error(r)[:2] == (422, "request.invalid") and "15" in r.json()["error"]["message"]


def test_slot_ranges_of_62_days_counting_both_ends(api, doctor_with_hours):
    first = date.today() + timedelta(days=1)
    url = f"/api/v1/doctors/{doctor_with_hours.id}/slots?from={first}&to="
    assert api.get(url + str(first + timedelta(days=61))).status_code == 200
    assert api.get(url + str(first + timedelta(days=62))).status_code == 422


def test_a_slot_the_list_leaves_out_across_a_clock_change_cannot_be_booked():
    """London springs forward at 01:00 on 2027-03-28: 45-minute slots from 00:00 local give a
    grid slot at 01:15 UTC that meets the one at 00:45 UTC. The list offers the earlier one
    only, and a booking of the later one is refused as the list would have it."""
    from bookings.errors import SlotUnavailable
    from bookings.models import BookingPolicy
    from bookings.selectors import doctor_slots

    profile = doctor()
    clinic = profile.clinics.get()
    clinic.time_zone = "Europe/London"
    clinic.save()
    AvailabilityRule.objects.create(
        doctor=profile, clinic=clinic, mode="in_person", weekday=6, start=time(0),
        end=time(3), slot_minutes=45,
    )  # fmt: skip
    BookingPolicy.objects.create(doctor=profile, min_notice_minutes=0)
    now = datetime(2027, 3, 20, tzinfo=UTC)
    day = datetime(2027, 3, 28, tzinfo=UTC)
    listed = [
        s.start
        for s in doctor_slots(doctor=profile, start=day, end=day + timedelta(days=1), now=now)
    ]
    hidden = datetime(2027, 3, 28, 1, 15, tzinfo=UTC)
    assert hidden not in listed and datetime(2027, 3, 28, 0, 45, tzinfo=UTC) in listed
    with pytest.raises(SlotUnavailable):
        services.appointment_book(
            patient=make_user(), doctor_id=profile.id, start=hidden, mode="in_person", now=now
        )
    for start in listed:  # and every listed one can be
        services.appointment_book(
            patient=make_user(), doctor_id=profile.id, start=start, mode="in_person", now=now
        )


def test_one_off_hours_of_days_gone_are_no_longer_read(doctor_with_hours):
    """Every booking and slot list reads the doctor's hours: one-off hours left from long ago
    would make that read grow without end."""
    from bookings.selectors import hours_of

    today = datetime.now(UTC).date()
    for days in (-30, -3, -1, 5):
        ExtraHours.objects.create(
            doctor=doctor_with_hours, mode="video", date=today + timedelta(days=days),
            start=time(20), end=time(21),
        )  # fmt: skip
    read = sorted(h.on_date for h in hours_of(doctor_with_hours) if h.on_date is not None)
    assert read == [today - timedelta(days=1), today + timedelta(days=5)]


def test_the_overlap_check_looks_at_a_year_or_a_day_never_across_centuries(
    api, doctor_with_hours, monkeypatch
):
    """One-off hours dated in 2199 once made weekly hours be compared with each other over
    175 years (minutes of work under the profile's lock): weekly hours meet weekly hours
    within a year, and anything meets one-off hours on their day."""
    from bookings import slots

    me = auth(api, doctor_with_hours.user)
    r = post(
        api, EXTRA, {"date": "2199-12-30", "start": "20:00", "end": "21:00", "mode": "video"}, **me
    )
    assert r.status_code == 201, r.json()
    spans = []
    compare = slots.first_overlap

    def recording(new, existing, start, end):
        spans.append(end - start)
        return compare(new, existing, start, end)

    monkeypatch.setattr(services, "first_overlap", recording)
    r = post(api, RULES, {"weekday": 1, "start": "20:00", "end": "21:00", "mode": "video"}, **me)
    assert r.status_code == 201, r.json()
    assert spans and max(spans) <= timedelta(days=371), max(spans)
    assert sorted({s.days for s in spans}) == [3, 371]  # the dated one on its day, the rest a year
    # and a rule meeting those far hours is still refused (2199-12-30 is a Monday)
    r = post(api, RULES, {"weekday": 0, "start": "20:30", "end": "22:00", "mode": "video"}, **me)
    assert r.status_code == 422


def test_online_payment_cannot_be_required_before_a_provider_exists(
    api, doctor_with_hours, settings
):
    settings.ONLINE_PAYMENTS_ENABLED = False
    me = auth(api, doctor_with_hours.user, **{"Accept-Language": "ar"})
    r = api.patch(
        "/api/v1/availability/policy",
        {"payment_required": True},
        content_type="application/json",
        headers=me,
    )
    status, code, fields = error(r)
    assert (status, code) == (422, "request.invalid")
    assert "\u0600" <= fields["payment_required"][0] <= "\u06ff"  # in the request's language
    settings.ONLINE_PAYMENTS_ENABLED = True
    r = api.patch(
        "/api/v1/availability/policy",
        {"payment_required": True},
        content_type="application/json",
        headers=me,
    )
    assert r.status_code == 200 and r.json()["payment_required"] is True


def test_without_online_payments_a_policy_requiring_them_holds_nothing(
    api, doctor_with_hours, settings
):
    from bookings.models import BookingPolicy, Status
    from tests.bookings.test_booking_events import video_slot

    BookingPolicy.objects.filter(doctor=doctor_with_hours).update(
        payment_required=True, requires_approval=False
    )  # set while online payments were on
    settings.ONLINE_PAYMENTS_ENABLED = False
    patient = make_user()
    booked = services.appointment_book(
        patient=patient,
        doctor_id=doctor_with_hours.id,
        start=video_slot(doctor_with_hours),
        mode="video",
    )
    assert booked.status == Status.CONFIRMED and booked.hold_expires_at is None
    # Other fields of such a policy still change (a client sends the whole policy back).
    r = api.patch(
        "/api/v1/availability/policy",
        {"payment_required": True, "cancel_cutoff_hours": 6},
        content_type="application/json",
        headers=auth(api, doctor_with_hours.user),
    )
    assert r.status_code == 200 and r.json()["cancel_cutoff_hours"] == 6


def test_a_minimum_notice_as_long_as_the_window_is_refused(api, doctor_with_hours):
    """No moment would be both far enough ahead and near enough: not one slot listed."""
    me = auth(api, doctor_with_hours.user, **{"Accept-Language": "ar"})

    def patch(body):
        return api.patch(
            "/api/v1/availability/policy", body, content_type="application/json", headers=me
        )

    status, _code, fields = error(patch({"min_notice_minutes": 2 * 24 * 60, "window_days": 2}))
    assert status == 422 and "\u0600" <= fields["window_days"][0] <= "\u06ff"
    assert patch({"window_days": 3}).status_code == 200
    status, _code, fields = error(patch({"min_notice_minutes": 3 * 24 * 60}))
    assert status == 422 and "min_notice_minutes" in fields
    r = patch({"min_notice_minutes": 3 * 24 * 60 - 1})
    assert r.status_code == 200 and r.json()["min_notice_minutes"] == 3 * 24 * 60 - 1
