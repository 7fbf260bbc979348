"""The hand-written reads of slot lists and bookings (``bookings.selectors.hours_of`` and
``busy_of``) answer what the ORM answers, on PostgreSQL here and on SQLite (``make run``'s
embedded defaults) in a process of its own."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bookings import selectors
from bookings.models import Appointment, AvailabilityRule, ExtraHours, Status, TimeOff
from bookings.slots import Hours
from tests.doctors.factories import clinic_at, doctor
from tests.factories import make_user
from tests.procs import run_on_sqlite

T0 = datetime(2027, 3, 1, 6, tzinfo=UTC)


def seed() -> tuple:
    """A doctor (profile zone Asia/Riyadh) with a Cairo clinic and a Dubai one, weekly rules
    and extra hours with and without a clinic, time off, and appointments in every status,
    holds expired, running and without an expiry among them, one hour apart."""
    profile = doctor(time_zone="Asia/Riyadh", offers_video=True)
    cairo = profile.clinics.get()
    dubai = clinic_at(profile, 25.2, 55.27, city="Dubai")
    dubai.time_zone = "Asia/Dubai"
    dubai.save()
    for weekday, clinic, mode in (
        (0, cairo, "in_person"),
        (3, dubai, "in_person"),
        (3, None, "video"),
    ):
        AvailabilityRule.objects.create(
            doctor=profile, clinic=clinic, mode=mode, weekday=weekday, start=time(9),
            end=time(13, 30), slot_minutes=20, buffer_minutes=5,
        )  # fmt: skip
    for day, clinic in ((date(2027, 3, 4), dubai), (date(2027, 3, 2), None)):
        ExtraHours.objects.create(
            doctor=profile, clinic=clinic, mode="video", date=day, start=time(20),
            end=time(22), slot_minutes=15,
        )  # fmt: skip
    TimeOff.objects.create(doctor=profile, start=T0, end=T0 + timedelta(hours=2))
    TimeOff.objects.create(doctor=profile, start=T0 + timedelta(days=2), end=T0 + timedelta(days=3))
    other = doctor()  # someone else's time off and appointments never count
    TimeOff.objects.create(doctor=other, start=T0, end=T0 + timedelta(days=9))
    patient = make_user()
    at = T0 + timedelta(hours=3)
    holds = [None, T0 - timedelta(minutes=1), T0, T0 + timedelta(minutes=1)]
    for status in Status.values:
        for hold in holds if status == Status.HELD else [None]:
            Appointment.objects.create(
                doctor=profile, patient=patient, mode="video", status=status,
                start=at, end=at + timedelta(minutes=20), hold_expires_at=hold,
            )  # fmt: skip
            at += timedelta(hours=1)
    Appointment.objects.create(
        doctor=other, patient=make_user(), mode="video", status=Status.CONFIRMED,
        start=T0 + timedelta(hours=3), end=T0 + timedelta(hours=4),
    )  # fmt: skip
    return profile, cairo, dubai


def expected_busy(profile, start, end, now, margin, appointments):
    """The rule as querysets: time off and, with ``appointments``, active appointments meeting
    the range widened by the margin, a hold past its expiry not among them."""
    off = TimeOff.objects.filter(doctor=profile, end__gt=start - margin, start__lt=end)
    found = list(off.values_list("start", "end"))
    if appointments:
        booked = Appointment.objects.filter(
            doctor=profile, end__gt=start - margin, start__lt=end, status__in=selectors.ACTIVE
        ).exclude(status=Status.HELD, hold_expires_at__lte=now)
        found += list(booked.values_list("start", "end"))
    return sorted(found)


def check_busy(profile) -> int:
    """``busy_of`` against the querysets over windows that cut the seeded rows at their edges
    and in their middles, with several "now"s and margins; the number of rows compared."""
    compared = 0
    edges = [T0 + timedelta(minutes=m) for m in range(-60, 60 * 16, 35)]
    for start in edges[::3]:
        for end in edges[1::4]:
            if end <= start:
                continue
            for now in (T0 - timedelta(hours=1), T0, T0 + timedelta(seconds=30)):
                for margin in (timedelta(0), timedelta(minutes=5), timedelta(minutes=40)):
                    for appointments in (False, True):
                        got = sorted(
                            selectors.busy_of(
                                profile, start, end, now=now, margin=margin,
                                appointments=appointments,
                            )
                        )  # fmt: skip
                        expected = expected_busy(profile, start, end, now, margin, appointments)
                        assert got == expected, (start, end, margin, appointments)
                        assert all(a.tzinfo is not None and b.tzinfo is not None for a, b in got)
                        compared += len(got)
    return compared


def check_hours(profile, cairo, dubai) -> None:
    found = selectors.hours_of(profile)
    riyadh, cairo_zone, dubai_zone = (
        ZoneInfo(z) for z in ("Asia/Riyadh", "Africa/Cairo", "Asia/Dubai")
    )
    expected = [
        Hours(cairo_zone, time(9), time(13, 30), 20, 5, "in_person", cairo.pk, 0, None),
        Hours(dubai_zone, time(9), time(13, 30), 20, 5, "in_person", dubai.pk, 3, None),
        Hours(riyadh, time(9), time(13, 30), 20, 5, "video", None, 3, None),
        Hours(riyadh, time(20), time(22), 15, 0, "video", None, None, date(2027, 3, 2)),
        Hours(dubai_zone, time(20), time(22), 15, 0, "video", dubai.pk, None, date(2027, 3, 4)),
    ]
    assert found == expected, found
    assert all(type(h.clinic_id) is type(cairo.pk) for h in found if h.clinic_id is not None)
    # hours in a mode the profile no longer offers are not bookable
    profile.offers_video = False
    assert selectors.hours_of(profile) == [h for h in expected if h.mode != "video"]
    profile.offers_video = True


def check_all() -> None:
    profile, cairo, dubai = seed()
    check_hours(profile, cairo, dubai)
    assert check_busy(profile) > 100
    # and the slot list built on them: every slot inside an hour, none on a busy interval
    start, end = T0 - timedelta(days=1), T0 + timedelta(days=8)
    slots = selectors.doctor_slots(doctor=profile, start=start, end=end, now=T0 - timedelta(days=1))
    busy = selectors.busy_of(profile, start, end, now=T0, margin=timedelta(minutes=5))
    assert slots and not any(
        s.start < b + timedelta(minutes=5) and b0 < s.end for s in slots for b0, b in busy
    )


@pytest.mark.django_db
def test_hours_and_busy_time_answer_what_the_orm_answers():
    check_all()


def test_hours_and_busy_time_answer_what_the_orm_answers_on_sqlite(tmp_path):
    run_on_sqlite(
        "from tests.bookings.test_statements import check_all\ncheck_all()\nprint('sqlite ok')\n",
        tmp_path,
    )


def check_bookable_doctor() -> None:
    """``bookable_doctor`` finds what the ORM query finds: the doctor, their user and their
    policy, with the same field values; no policy, or None for a doctor not bookable."""
    import uuid

    from bookings.models import BookingPolicy
    from doctors.models import DoctorProfile

    with_policy, without, pending, inactive = (
        doctor(),
        doctor(),
        doctor(verified=False),
        doctor(),
    )
    BookingPolicy.objects.create(doctor=with_policy, min_notice_minutes=7, requires_approval=True)
    type(inactive.user).objects.filter(pk=inactive.user_id).update(is_active=False)

    def fields(obj):
        return {k: v for k, v in vars(obj).items() if k != "_state"}

    for profile in (with_policy, without):
        found = selectors.bookable_doctor(profile.pk)
        orm = DoctorProfile.objects.select_related("user", "booking_policy").get(pk=profile.pk)
        assert fields(found) == fields(orm)
        assert fields(found.user) == fields(orm.user)
        if profile is with_policy:
            assert fields(found.booking_policy) == fields(orm.booking_policy)
            assert selectors.policy_for(found).min_notice_minutes == 7
        else:
            assert found._state.fields_cache["booking_policy"] is None
            assert selectors.policy_for(found).min_notice_minutes == 60  # the defaults
    for profile_id in (pending.pk, inactive.pk, uuid.uuid4()):
        assert selectors.bookable_doctor(profile_id) is None
    # for a booking or a move: the patient's account must be an active patient's
    patient, closed, moved = make_user(), make_user(), make_user()
    type(closed).objects.filter(pk=closed.pk).update(is_active=False)
    type(moved).objects.filter(pk=moved.pk).update(role="helper")
    assert selectors.bookable_doctor(without.pk, patient_id=patient.pk) is not None
    for other in (closed, moved):
        assert selectors.bookable_doctor(without.pk, patient_id=other.pk) is None


@pytest.mark.django_db
def test_the_bookable_doctor_statement_answers_what_the_orm_answers():
    check_bookable_doctor()


def test_the_bookable_doctor_statement_on_sqlite(tmp_path):
    run_on_sqlite(
        "from tests.bookings.test_statements import check_bookable_doctor\n"
        "check_bookable_doctor()\nprint('sqlite ok')\n",
        tmp_path,
    )
