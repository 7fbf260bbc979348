"""The cached schedule (policy + hours) behind public slot lists: every change to what it is
made of shows at once, and a booking is never checked against a stale copy."""

from datetime import UTC, datetime, time, timedelta

import pytest
from django.core.cache import cache

from bookings import selectors
from bookings.slots import Hours
from tests.bookings.conftest import next_slot
from tests.factories import bearer, login, make_user, post


def slots(api, doctor, day):
    r = api.get(f"/api/v1/doctors/{doctor.id}/slots?from={day}&to={day}&tz=Africa/Cairo")
    assert r.status_code == 200, r.content
    return [(i["start"][11:16], i["mode"]) for i in r.json()["items"]]


@pytest.mark.django_db(transaction=True)  # the cache is emptied on commit
def test_every_change_shows_in_the_next_slot_list(api, doctor_with_hours):
    day = next_slot().date()
    weekday = day.weekday()
    headers = bearer(login(api, doctor_with_hours.user.email)["access"])
    before = slots(api, doctor_with_hours, day)
    assert ("09:00", "in_person") in before and ("19:00", "video") not in before
    assert cache.get(selectors.schedule_key(doctor_with_hours.id)) is not None  # cached
    # a new weekly rule (video 19:00-20:00 Cairo = 17:00-18:00 UTC, the doctor's zone)
    r = post(
        api,
        "/api/v1/availability/rules",
        {"weekday": weekday, "start": "17:00", "end": "18:00", "mode": "video"},
        **headers,
    )
    assert r.status_code in (200, 201), r.content
    rule_id = r.json()["id"]
    assert ("19:00", "video") in slots(api, doctor_with_hours, day)
    # extra hours on that day
    r = post(
        api,
        "/api/v1/availability/extra-hours",
        {"date": str(day), "start": "20:00", "end": "20:30", "mode": "video"},
        **headers,
    )
    assert r.status_code in (200, 201), r.content
    assert ("22:00", "video") in slots(api, doctor_with_hours, day)
    # the rule deleted
    r = api.delete(f"/api/v1/availability/rules/{rule_id}", headers=headers)
    assert r.status_code in (200, 204), r.content
    assert ("19:00", "video") not in slots(api, doctor_with_hours, day)
    # the clinic moves to another zone: its wall-clock hours are now Riyadh's (UTC+3)
    clinic = doctor_with_hours.clinics.get()
    clinic.time_zone = "Asia/Riyadh"
    clinic.save()
    moved = slots(api, doctor_with_hours, day)
    assert ("12:30", "in_person") in before  # 09:00-13:00 Cairo
    assert ("12:30", "in_person") not in moved and ("08:00", "in_person") in moved  # 08-12
    # the policy: a window of 1 day leaves nothing to book 3 days ahead
    r = api.patch(
        "/api/v1/availability/policy",
        {"window_days": 1},
        content_type="application/json",
        headers=headers,
    )
    assert r.status_code == 200, r.content
    assert slots(api, doctor_with_hours, day) == []


@pytest.mark.django_db
def test_a_booking_checks_fresh_hours_not_the_cached_ones(api, doctor_with_hours):
    """Hours removed but still in a (forged) cache entry: listed, yet not bookable."""
    start = next_slot(hour=21)  # outside every real rule
    policy, hours = selectors.schedule_of(doctor_with_hours)
    wall = start.astimezone(hours[0].zone)
    ghost = Hours(
        zone=hours[0].zone,
        start=wall.time(),
        end=time(23),
        slot_minutes=30,
        buffer_minutes=0,
        mode="in_person",
        clinic_id=hours[0].clinic_id,
        on_date=wall.date(),
    )
    cache.set(selectors.schedule_key(doctor_with_hours.id), (policy, [*hours, ghost]), 60)
    listed = selectors.doctor_slots(
        doctor=doctor_with_hours, start=start - timedelta(minutes=1), end=start + timedelta(hours=1)
    )
    assert listed and listed[0].start == start
    token = login(api, make_user().email)["access"]
    r = post(
        api,
        "/api/v1/appointments",
        {"doctor_id": str(doctor_with_hours.id), "start": start.isoformat(), "mode": "in_person"},
        **bearer(token),
    )
    assert r.status_code == 422 and r.json()["error"]["code"] == "booking.slot_unavailable"
    assert start > datetime.now(UTC)


@pytest.mark.django_db
def test_a_booking_leaves_the_cached_schedule_alone(api, doctor_with_hours):
    """A booking reads the hours fresh and does not write them back: the cached entry (here
    a marker) is neither replaced nor filled by the booking."""
    key = selectors.schedule_key(doctor_with_hours.id)
    token = login(api, make_user().email)["access"]
    body = {"doctor_id": str(doctor_with_hours.id), "mode": "in_person"}
    r = post(
        api, "/api/v1/appointments", {**body, "start": next_slot().isoformat()}, **bearer(token)
    )
    assert r.status_code == 201, r.content
    assert cache.get(key) is None
    cache.set(key, "marker", 60)
    start = next_slot(hour=11)
    r = post(api, "/api/v1/appointments", {**body, "start": start.isoformat()}, **bearer(token))
    assert r.status_code == 201, r.content
    assert cache.get(key) == "marker"


def _delete_video_hours_meanwhile(doctor, read):
    """``read`` (a selector's step that reads hours), with the doctor's video hours deleted
    and committed (the cache emptied) just after it read them: a change racing the read."""
    from bookings.models import AvailabilityRule

    def racing(*args, **kwargs):
        found = read(*args, **kwargs)
        AvailabilityRule.objects.filter(doctor=doctor, mode="video").delete()  # autocommit
        return found

    return racing


@pytest.mark.django_db(transaction=True)  # the cache is emptied on commit
def test_a_read_that_raced_a_change_does_not_cache_the_old_hours(doctor_with_hours, monkeypatch):
    key = selectors.schedule_key(doctor_with_hours.id)
    racing = _delete_video_hours_meanwhile(doctor_with_hours, selectors.hours_of)
    monkeypatch.setattr(selectors, "hours_of", racing)
    _, hours = selectors.schedule_of(doctor_with_hours)
    assert "video" in {h.mode for h in hours}  # what it read, answered once
    assert not isinstance(cache.get(key), tuple)  # and not cached for the next reads
    monkeypatch.undo()
    _, hours = selectors.schedule_of(doctor_with_hours)
    assert {h.mode for h in hours} == {"in_person"}
    assert cache.get(key)[1] == hours  # a read with no change meanwhile is cached


@pytest.mark.django_db(transaction=True)
def test_the_directorys_batch_read_that_raced_a_change_does_not_cache_it(
    doctor_with_hours, monkeypatch
):
    key = selectors.schedule_key(doctor_with_hours.id)
    monkeypatch.setattr(
        selectors, "_hours", _delete_video_hours_meanwhile(doctor_with_hours, selectors._hours)
    )
    now = datetime.now(UTC)
    assert doctor_with_hours.id in selectors.first_free_slots([doctor_with_hours.id], None, now)
    assert not isinstance(cache.get(key), tuple)
    monkeypatch.undo()
    selectors.first_free_slots([doctor_with_hours.id], None, now, mode="video")
    assert {h.mode for h in cache.get(key)[1]} == {"in_person"}
