"""Property tests of bookings.slots: free slots from wall-clock hours across DST changes.

Everything here is pure Python (no database). Clock changes are not hard-coded: they are found
by scanning each zone's UTC offset (``transitions``), and the oracles below (``local_instants``,
``close_of``) only ever convert UTC -> local, never the module's own local -> UTC path.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, event, example, given, note, settings
from hypothesis import strategies as st

from bookings.slots import Hours, Slot, free_slots, wall_to_utc

DST_ZONES = (
    "Africa/Cairo",  # forward at 00:00 on the last Friday of April, back at 24:00 last Thursday Oct
    "Europe/London",
    "America/New_York",
    "America/Santiago",  # southern hemisphere, changes at midnight
    "Australia/Lord_Howe",  # 30-minute shift
    "Asia/Beirut",  # changes at midnight
)
NO_DST_ZONES = ("Asia/Riyadh",)
ALL_ZONES = DST_ZONES + NO_DST_ZONES
# DST zones whose skipped hour does not start at midnight, so a rule can start before it and end in it.
MIDDAY_GAP_ZONES = ("Europe/London", "America/New_York", "Australia/Lord_Howe")
MODES = ("video", "in_person", "chat")
CLINICS = tuple(uuid.UUID(int=n) for n in range(1, 4))

SCAN_FROM = datetime(2025, 1, 1, tzinfo=UTC)
SCAN_TO = datetime(2028, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
DAY = timedelta(days=1)


# --- oracles -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transition:
    instant: datetime  # UTC, the first instant with the new offset
    before: timedelta
    after: timedelta

    @property
    def wall_from(self) -> datetime:
        """The wall time the clock would have shown (old offset) when it changes."""
        return (self.instant + self.before).replace(tzinfo=None)

    @property
    def wall_to(self) -> datetime:
        """The wall time the clock shows right after the change."""
        return (self.instant + self.after).replace(tzinfo=None)

    @property
    def forward(self) -> bool:
        return self.after > self.before


@functools.cache
def transitions(zone_name: str) -> tuple[Transition, ...]:
    """Offset changes of a zone between SCAN_FROM and SCAN_TO, found by scanning utcoffset every
    6 hours and bisecting each change to the second."""
    zone = ZoneInfo(zone_name)

    def offset(ts: int) -> timedelta:
        return datetime.fromtimestamp(ts, UTC).astimezone(zone).utcoffset()  # type: ignore[return-value]

    found = []
    step = 6 * 3600
    ts, stop = int(SCAN_FROM.timestamp()), int(SCAN_TO.timestamp())
    while ts < stop:
        if offset(ts) != offset(ts + step):
            lo, hi = ts, ts + step
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (mid, hi) if offset(mid) == offset(lo) else (lo, mid)
            found.append(Transition(datetime.fromtimestamp(hi, UTC), offset(lo), offset(hi)))
        ts += step
    return tuple(found)


def local_wall(instant: datetime, zone: ZoneInfo) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


def local_instants(zone: ZoneInfo, wall: datetime) -> list[datetime]:
    """Every UTC instant at which the zone's clock reads ``wall`` (naive): [] in a skipped
    hour, two in a repeated one. Candidates are checked by converting UTC -> local only."""
    found = set()
    for fold in (0, 1):
        offset = wall.replace(tzinfo=zone, fold=fold).utcoffset()
        assert offset is not None
        instant = (wall - offset).replace(tzinfo=UTC)
        if local_wall(instant, zone) == wall:
            found.add(instant)
    return sorted(found)


def close_of(zone: ZoneInfo, wall: datetime) -> datetime:
    """The first instant at which the clock reads ``wall`` or later: the instant of ``wall`` (its
    first occurrence), or, if ``wall`` is skipped, the instant the clock jumps over it."""
    instants = local_instants(zone, wall)
    if instants:
        return instants[0]
    for tr in transitions(zone.key):
        if tr.forward and tr.wall_from <= wall < tr.wall_to:
            return tr.instant
    raise AssertionError(f"{wall} is skipped in {zone.key} outside the scanned years")


def applies(hours: Hours, day: date) -> bool:
    return (hours.weekday is None or day.weekday() == hours.weekday) and (
        hours.on_date is None or day == hours.on_date
    )


def local_days(zone: ZoneInfo, start: datetime, end: datetime) -> list[date]:
    first = start.astimezone(zone).date() - DAY
    last = end.astimezone(zone).date() + DAY
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def close_wall(day: date, hours: Hours) -> datetime:
    """The wall clock ``hours`` close at on ``day``; an end of 00:00 is the next midnight."""
    if hours.end == time(0):
        return datetime.combine(day + DAY, time(0))
    return datetime.combine(day, hours.end)


def end_is_skipped(hours: Hours, start: datetime, end: datetime) -> bool:
    """Whether the rule's end wall time does not exist on a day it applies to."""
    return any(
        applies(hours, day) and not local_instants(hours.zone, close_wall(day, hours))
        for day in local_days(hours.zone, start, end)
    )


def fits_hours(slot: Slot, hours: Hours) -> bool:
    """The slot is one of ``hours``' wall-clock slots: starts on a day the rule applies, at an
    existing wall time (its first occurrence) on the rule's grid at or after ``hours.start``,
    lasts exactly ``slot_minutes`` and ends at a wall time at or before ``hours.end`` (if
    ``hours.end`` is skipped that day: no later than the clock change, i.e. the next existing
    wall time)."""
    if (slot.mode, slot.clinic_id) != (hours.mode, hours.clinic_id):
        return False
    zone = hours.zone
    start_wall = local_wall(slot.start, zone)
    day = start_wall.date()
    if not applies(hours, day):
        return False
    open_, close = datetime.combine(day, hours.start), close_wall(day, hours)
    step = timedelta(minutes=hours.slot_minutes + hours.buffer_minutes)
    if start_wall < open_ or (start_wall - open_) % step:
        return False
    # Exists, round-trips, and is the first occurrence of that wall time.
    if local_instants(zone, start_wall)[:1] != [slot.start]:
        return False
    if slot.end - slot.start != timedelta(minutes=hours.slot_minutes):
        return False
    end_wall = local_wall(slot.end, zone)
    if slot.end > close_of(zone, close):
        return False
    skipped_close = not local_instants(zone, close)
    return end_wall <= close or (skipped_close and slot.end == close_of(zone, close))


def grid(hours: Hours, start: datetime, end: datetime) -> Iterable[tuple[datetime, datetime]]:
    """Every slot the documented rules allow for ``hours`` (before busy/bounds/overlap)."""
    step = timedelta(minutes=hours.slot_minutes + hours.buffer_minutes)
    length = timedelta(minutes=hours.slot_minutes)
    for day in local_days(hours.zone, start, end):
        if not applies(hours, day):
            continue
        close = close_wall(day, hours)
        limit = close_of(hours.zone, close)
        wall = datetime.combine(day, hours.start)
        while wall + length <= close:
            instants = local_instants(hours.zone, wall)
            if instants and instants[0] + length <= limit:
                yield instants[0], instants[0] + length
            wall += step


def overlaps(a_start: datetime, a_end: datetime, b_start: datetime, b_end: datetime) -> bool:
    return a_start < b_end and b_start < a_end


@dataclass
class Case:
    hours: list[Hours]
    start: datetime
    end: datetime
    busy: list[tuple[datetime, datetime]]
    not_before: datetime
    not_after: datetime

    def run(self) -> list[Slot]:
        note(repr(self))  # this hypothesis prints generated arguments as empty ("case=,")
        return free_slots(
            hours=self.hours,
            start=self.start,
            end=self.end,
            busy=self.busy,
            not_before=self.not_before,
            not_after=self.not_after,
        )


def check_invariants(case: Case, slots: list[Slot]) -> None:
    for prev, nxt in zip(slots, slots[1:], strict=False):
        assert prev.start <= nxt.start, f"not sorted: {prev} then {nxt}"
        assert nxt.start >= prev.end, f"overlap: {prev} and {nxt}"
    for slot in slots:
        assert slot.start.utcoffset() == timedelta(0) and slot.end.utcoffset() == timedelta(0)
        for b_start, b_end in case.busy:
            assert not overlaps(slot.start, slot.end, b_start, b_end), (slot, (b_start, b_end))
        assert case.start <= slot.start < case.end, slot
        assert case.not_before <= slot.start <= case.not_after, slot
        assert any(fits_hours(slot, h) for h in case.hours), f"{slot} fits no hours"
        # wall_to_utc agrees: the start is an existing wall time of some matching rule's zone.
        assert any(
            wall_to_utc(w.date(), w.time(), h.zone) == slot.start
            for h in case.hours
            for w in [local_wall(slot.start, h.zone)]
        )
    if len({h.zone.key for h in case.hours}) == 1:
        zone = case.hours[0].zone
        walls = [local_wall(s.start, zone) for s in slots]
        assert len(set(walls)) == len(walls), "a wall-clock start is offered twice"


def record_events(case: Case, slots: list[Slot]) -> None:
    """Report (in --hypothesis-show-statistics) how often the DST cases are really hit."""
    for h in case.hours:
        for day in local_days(h.zone, case.start, case.end):
            if not applies(h, day):
                continue
            open_, close = datetime.combine(day, h.start), datetime.combine(day, h.end)
            for tr in transitions(h.zone.key):
                if open_ <= min(tr.wall_from, tr.wall_to) < close:
                    event(
                        "hours contain a skipped hour"
                        if tr.forward
                        else "hours contain a repeated hour"
                    )
    for slot in slots:
        for h in case.hours:
            if len(local_instants(h.zone, local_wall(slot.start, h.zone))) == 2:
                event("slot starts at a repeated wall time")
            if local_wall(slot.end, h.zone) < local_wall(slot.start, h.zone):
                event("slot ends at an earlier wall time than it starts")
            if slot.end.astimezone(h.zone).utcoffset() != slot.start.astimezone(h.zone).utcoffset():
                event("slot spans a clock change")
    event(f"{min(len(slots), 10)}{'+' if len(slots) >= 10 else ''} slots")


def check_maximal(case: Case, slots: list[Slot]) -> None:
    """Completeness: every allowed slot that is free and in bounds is offered or overlaps one
    that is (the earlier slot wins where sources overlap)."""
    for hours in case.hours:
        for s, e in grid(hours, case.start, case.end):
            if not (case.start <= s < case.end and case.not_before <= s <= case.not_after):
                continue
            after = timedelta(minutes=hours.buffer_minutes)  # each source keeps its buffer
            if any(overlaps(s, e, b_start, b_end + after) for b_start, b_end in case.busy):
                continue
            assert any(overlaps(s, e, x.start, x.end) for x in slots), (
                f"free slot {s}-{e} of {hours} missing"
            )


# --- strategies ----------------------------------------------------------------------------


def minute_time(m: int) -> time:
    """``m`` minutes after midnight; 1440 (24:00, an end only) is kept as 00:00."""
    return time(m // 60 % 24, m % 60)


def minute_of(wall: datetime) -> int:
    return wall.hour * 60 + wall.minute


@st.composite
def hours_st(
    draw: st.DrawFn,
    zone: ZoneInfo,
    days: list[date],
    anchors: list[int],
    clinic_ids: tuple[uuid.UUID | None, ...],
) -> Hours:
    """Weekly rule or one-off hours; days and wall times biased towards the clock changes
    (``anchors``: minutes of the day at which the clock jumps from/to)."""
    day = draw(st.sampled_from(days))
    minute = st.one_of(
        st.integers(0, 1439),
        st.sampled_from(anchors),
        st.tuples(st.sampled_from(anchors), st.integers(-150, 150)).map(
            lambda t: min(max(t[0] + t[1], 0), 1439)
        ),
    )
    start_m, end_m = sorted([draw(minute), draw(minute)])
    if start_m == end_m:
        start_m, end_m = (start_m - 1, end_m) if end_m == 1439 else (start_m, end_m + 1)
    if draw(st.integers(0, 7)) == 0:
        end_m = 1440  # until the midnight that ends the day
    weekly = draw(st.booleans())
    return Hours(
        zone=zone,
        start=minute_time(start_m),
        end=minute_time(end_m),
        slot_minutes=draw(st.sampled_from([15, 20, 30, 45, 60]) | st.integers(5, 120)),
        buffer_minutes=draw(st.sampled_from([0, 0, 5]) | st.integers(0, 30)),
        mode=draw(st.sampled_from(MODES)),
        clinic_id=draw(st.sampled_from(clinic_ids)),
        weekday=day.weekday() if weekly else None,
        on_date=None if weekly else day,
    )


@st.composite
def case_st(draw: st.DrawFn, zones: tuple[str, ...] = ALL_ZONES, mixed: bool = False) -> Case:
    """Hours in one zone (or up to three with ``mixed``) over a range straddling a clock change
    of the first zone (a random instant for a zone without DST), busy intervals and bounds."""
    zone_names = draw(st.lists(st.sampled_from(zones), min_size=1, max_size=3 if mixed else 1))
    trs = transitions(zone_names[0])
    if trs:
        pivot = draw(st.sampled_from(trs)).instant
    else:
        pivot = SCAN_FROM + timedelta(minutes=draw(st.integers(30 * 1440, 2 * 365 * 1440)))
    around = st.integers(1, 3 * 1440) | st.integers(1440, 3 * 1440)
    start = pivot - timedelta(minutes=draw(around))
    end = pivot + timedelta(minutes=draw(around))
    span = int((end - start) / MINUTE)
    # Mixed sources share one clinic kind (all online or all clinics): see the regression test below.
    clinic_ids: tuple[uuid.UUID | None, ...] = draw(st.sampled_from([(None,), CLINICS]))
    hours = []
    for _ in range(draw(st.integers(1, 4))):
        zone = ZoneInfo(draw(st.sampled_from(zone_names)))
        days = local_days(zone, start, end)[1:-1]
        anchors = [9 * 60]
        for tr in transitions(zone.key):
            if start - 2 * DAY <= tr.instant <= end + 2 * DAY:
                days += [tr.wall_from.date(), tr.wall_to.date()] * 4
                anchors += [minute_of(tr.wall_from), minute_of(tr.wall_to)]
        hours.append(draw(hours_st(zone, days, anchors, clinic_ids)))
    busy = []
    for _ in range(draw(st.integers(0, 3))):
        b_start = start + timedelta(minutes=draw(st.integers(-180, span + 180)))
        busy.append((b_start, b_start + timedelta(minutes=draw(st.integers(1, 240)))))
    if draw(st.integers(0, 2)):
        not_before, not_after = start - DAY, end + DAY
    else:
        not_before = start + timedelta(minutes=draw(st.integers(-1440, span)))
        not_after = not_before + timedelta(minutes=draw(st.integers(-60, span + 1440)))
    return Case(hours, start, end, busy, not_before, not_after)


FAST = settings(deadline=None, max_examples=600, suppress_health_check=[HealthCheck.too_slow])


# --- the oracle itself ---------------------------------------------------------------------


def test_transitions_found_by_scanning() -> None:
    for name in DST_ZONES:
        assert len(transitions(name)) == 6, name  # two a year over 2025-2027
    assert transitions("Asia/Riyadh") == ()
    cairo = [tr for tr in transitions("Africa/Cairo") if tr.instant.year == 2026]
    spring, autumn = cairo
    assert (spring.wall_from, spring.wall_to) == (
        datetime(2026, 4, 24, 0),
        datetime(2026, 4, 24, 1),
    )
    assert spring.wall_from.weekday() == 4  # Friday
    # "24:00 on the last Thursday of October": Thursday 2026-10-29 23:00-24:00 happens twice.
    assert (autumn.wall_from, autumn.wall_to) == (
        datetime(2026, 10, 30),
        datetime(2026, 10, 29, 23),
    )
    assert autumn.wall_to.weekday() == 3  # Thursday
    lord_howe = [tr for tr in transitions("Australia/Lord_Howe") if tr.forward]
    assert all(tr.after - tr.before == timedelta(minutes=30) for tr in lord_howe)


# --- properties ----------------------------------------------------------------------------


@FAST
@given(case=case_st(zones=ALL_ZONES))
def test_free_slots_invariants_across_dst(case: Case) -> None:
    # Rules ending inside a skipped hour are covered by the regression tests further down.
    assume(not any(end_is_skipped(h, case.start, case.end) for h in case.hours))
    slots = case.run()
    record_events(case, slots)
    check_invariants(case, slots)
    check_maximal(case, slots)


@settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(case=case_st(zones=ALL_ZONES, mixed=True))
def test_free_slots_invariants_with_sources_in_several_zones(case: Case) -> None:
    assume(not any(end_is_skipped(h, case.start, case.end) for h in case.hours))
    slots = case.run()
    check_invariants(case, slots)
    check_maximal(case, slots)


@settings(deadline=None, max_examples=60)
@given(
    weekday=st.integers(0, 6),
    first=st.dates(date(2025, 1, 1), date(2027, 12, 1)),
    n_days=st.integers(1, 21),
    mode=st.sampled_from(MODES),
)
def test_riyadh_morning_has_six_half_hour_slots_per_matching_day(
    weekday: int, first: date, n_days: int, mode: str
) -> None:
    zone = ZoneInfo("Asia/Riyadh")
    hours = Hours(zone, time(9), time(12), 30, 0, mode, weekday=weekday)
    start = datetime.combine(first, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(first + timedelta(days=n_days), time(0), tzinfo=zone).astimezone(UTC)
    slots = free_slots(
        hours=[hours], start=start, end=end, busy=[], not_before=start, not_after=end
    )
    days = [first + timedelta(days=n) for n in range(n_days)]
    expected = [
        datetime.combine(d, minute_time(9 * 60 + 30 * k), tzinfo=zone).astimezone(UTC)
        for d in days
        if d.weekday() == weekday
        for k in range(6)
    ]
    assert [s.start for s in slots] == expected
    assert all(s.end - s.start == timedelta(minutes=30) and s.mode == mode for s in slots)


@settings(deadline=None, max_examples=80)
@given(
    zone_name=st.sampled_from(ALL_ZONES),
    day=st.dates(date(2025, 1, 10), date(2027, 12, 20)),
    start_m=st.integers(0, 1438),
    data=st.data(),
)
def test_plain_days_give_the_full_wall_clock_grid(
    zone_name: str, day: date, start_m: int, data: st.DataObject
) -> None:
    """On a day without a clock change the slots are exactly the naive wall-clock grid."""
    zone = ZoneInfo(zone_name)
    assume(
        not any(
            tr.wall_from.date() in (day, day + DAY) or tr.wall_to.date() in (day, day + DAY)
            for tr in transitions(zone_name)
        )
    )
    end_m = data.draw(st.integers(start_m + 1, 1439))
    slot_m, buffer_m = data.draw(st.integers(5, 120)), data.draw(st.integers(0, 30))
    hours = Hours(
        zone, minute_time(start_m), minute_time(end_m), slot_m, buffer_m, "video", on_date=day
    )
    start = datetime.combine(day, time(0), tzinfo=zone).astimezone(UTC)
    end = start + 2 * DAY
    note(repr(hours))
    slots = free_slots(
        hours=[hours], start=start, end=end, busy=[], not_before=start, not_after=end
    )
    walls = list(range(start_m, end_m - slot_m + 1, slot_m + buffer_m))
    assert [local_wall(s.start, zone) for s in slots] == [
        datetime.combine(day, minute_time(m)) for m in walls
    ]


@settings(deadline=None, max_examples=200)
@given(zone_name=st.sampled_from(DST_ZONES), data=st.data())
def test_wall_to_utc_matches_the_utc_to_local_oracle(zone_name: str, data: st.DataObject) -> None:
    zone = ZoneInfo(zone_name)
    tr = data.draw(st.sampled_from(transitions(zone_name)))
    wall = data.draw(
        st.integers(-120, 120).map(lambda m: tr.wall_to + timedelta(minutes=m))
        | st.integers(-120, 120).map(lambda m: tr.wall_from + timedelta(minutes=m))
    )
    note(repr(wall))
    instants = local_instants(zone, wall)
    got = wall_to_utc(wall.date(), wall.time(), zone)
    assert got == (instants[0] if instants else None)
    if not tr.forward and tr.wall_to <= wall < tr.wall_from:
        assert len(instants) == 2  # the repeated hour: fold=0 is the earlier instant


# --- explicit examples ---------------------------------------------------------------------


def slots_on(zone: ZoneInfo, day: date, hours: list[Hours]) -> list[Slot]:
    start = datetime.combine(day - DAY, time(0), tzinfo=UTC)
    end = start + 3 * DAY
    return free_slots(hours=hours, start=start, end=end, busy=[], not_before=start, not_after=end)


def starts(slots: list[Slot], zone: ZoneInfo) -> list[str]:
    return [s.start.astimezone(zone).isoformat() for s in slots]


CAIRO = ZoneInfo("Africa/Cairo")
NEW_YORK = ZoneInfo("America/New_York")


def test_cairo_spring_forward_friday_skips_the_missing_hour() -> None:
    day = date(2026, 4, 24)  # Friday: 00:00 -> 01:00
    hours = Hours(CAIRO, time(0), time(2), 30, 0, "video", weekday=4)
    slots = slots_on(CAIRO, day, [hours])
    assert starts(slots, CAIRO) == ["2026-04-24T01:00:00+03:00", "2026-04-24T01:30:00+03:00"]
    assert wall_to_utc(day, time(0), CAIRO) is None
    assert wall_to_utc(day, time(0, 30), CAIRO) is None
    assert wall_to_utc(day, time(1), CAIRO) == datetime(2026, 4, 23, 22, tzinfo=UTC)


def test_cairo_fall_back_thursday_offers_the_repeated_hour_once() -> None:
    thursday, friday = date(2026, 10, 29), date(2026, 10, 30)  # 24:00 Thu -> 23:00 Thu
    late = Hours(CAIRO, time(22), time(23, 59), 15, 0, "video", weekday=3)
    early = Hours(CAIRO, time(0), time(1), 15, 0, "video", weekday=4)
    slots = slots_on(CAIRO, thursday, [late, early])
    assert starts(slots, CAIRO) == [
        "2026-10-29T22:00:00+03:00",
        "2026-10-29T22:15:00+03:00",
        "2026-10-29T22:30:00+03:00",
        "2026-10-29T22:45:00+03:00",
        "2026-10-29T23:00:00+03:00",  # first occurrence only; 23:00+02:00 is not offered
        "2026-10-29T23:15:00+03:00",
        "2026-10-29T23:30:00+03:00",
        # 23:45 would end at 24:00 wall, past 23:59
        "2026-10-30T00:00:00+02:00",
        "2026-10-30T00:15:00+02:00",
        "2026-10-30T00:30:00+02:00",
        "2026-10-30T00:45:00+02:00",
    ]
    walls = [local_wall(s.start, CAIRO) for s in slots]
    assert len(set(walls)) == len(walls)
    assert wall_to_utc(thursday, time(23, 30), CAIRO) == datetime(2026, 10, 29, 20, 30, tzinfo=UTC)
    assert local_instants(CAIRO, datetime(2026, 10, 29, 23, 30)) == [
        datetime(2026, 10, 29, 20, 30, tzinfo=UTC),
        datetime(2026, 10, 29, 21, 30, tzinfo=UTC),
    ]
    assert wall_to_utc(friday, time(0), CAIRO) == datetime(2026, 10, 29, 22, tzinfo=UTC)


def test_new_york_spring_forward() -> None:
    day = date(2026, 3, 8)  # Sunday: 02:00 -> 03:00
    hours = Hours(NEW_YORK, time(1), time(4), 30, 0, "video", weekday=6)
    slots = slots_on(NEW_YORK, day, [hours])
    assert starts(slots, NEW_YORK) == [
        "2026-03-08T01:00:00-05:00",
        "2026-03-08T01:30:00-05:00",
        "2026-03-08T03:00:00-04:00",
        "2026-03-08T03:30:00-04:00",
    ]
    assert slots[1].end == slots[2].start  # 01:30 EST + 30 min is 03:00 EDT
    assert wall_to_utc(day, time(2, 30), NEW_YORK) is None
    assert wall_to_utc(day, time(2), NEW_YORK) is None
    assert wall_to_utc(day, time(3), NEW_YORK) == datetime(2026, 3, 8, 7, tzinfo=UTC)


def test_new_york_fall_back() -> None:
    day = date(2026, 11, 1)  # Sunday: 02:00 EDT -> 01:00 EST
    hours = Hours(NEW_YORK, time(0, 30), time(3), 30, 0, "video", weekday=6)
    slots = slots_on(NEW_YORK, day, [hours])
    assert starts(slots, NEW_YORK) == [
        "2026-11-01T00:30:00-04:00",
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T01:30:00-04:00",
        "2026-11-01T02:00:00-05:00",
        "2026-11-01T02:30:00-05:00",
    ]
    assert wall_to_utc(day, time(1, 30), NEW_YORK) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert wall_to_utc(day, time(1), NEW_YORK) == datetime(2026, 11, 1, 5, tzinfo=UTC)


def test_busy_time_and_bounds_remove_slots() -> None:
    day = date(2026, 3, 8)
    hours = Hours(NEW_YORK, time(1), time(4), 30, 0, "video", weekday=6)
    start = datetime(2026, 3, 8, 6, tzinfo=UTC)  # 01:00 EST
    busy = [(datetime(2026, 3, 8, 6, 45, tzinfo=UTC), datetime(2026, 3, 8, 6, 50, tzinfo=UTC))]
    slots = free_slots(
        hours=[hours],
        start=start,
        end=start + DAY,
        busy=busy,
        not_before=start + timedelta(minutes=1),
        not_after=datetime(2026, 3, 8, 7, 30, tzinfo=UTC),
    )
    # 01:00 EST is before not_before, 01:30 EST overlaps busy; 03:30 EDT is the not_after bound.
    assert starts(slots, NEW_YORK) == ["2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"]
    assert slots_on(NEW_YORK, day, [hours])  # sanity: without them there are slots


# --- regressions: a rule ending in a skipped hour; one slot from two sources ---------------------


@pytest.mark.parametrize(
    ("zone_name", "day", "open_", "close", "minutes"),
    [
        ("America/New_York", date(2026, 3, 8), time(1, 30), time(2, 30), 60),
        ("Europe/London", date(2026, 3, 29), time(0, 30), time(1, 30), 60),
        ("Australia/Lord_Howe", date(2026, 10, 4), time(1, 15), time(2, 15), 60),
    ],
)
def test_rule_ending_in_skipped_hour_closes_at_the_clock_change(
    zone_name: str, day: date, open_: time, close: time, minutes: int
) -> None:
    zone = ZoneInfo(zone_name)
    hours = Hours(zone, open_, close, minutes, 0, "video", on_date=day)
    slots = slots_on(zone, day, [hours])
    change = close_of(zone, datetime.combine(day, close))  # the instant the clock jumps
    # The absolute window from `open_` to the clock change is shorter than a slot.
    assert change - wall_to_utc(day, open_, zone) < timedelta(minutes=minutes)  # type: ignore[operator]
    assert slots == []


@st.composite
def gap_end_case_st(draw: st.DrawFn) -> Case:
    """A case whose first hours end inside the skipped hour of a spring-forward day."""
    case = draw(case_st(zones=MIDDAY_GAP_ZONES))
    zone = case.hours[0].zone
    tr = draw(st.sampled_from([tr for tr in transitions(zone.key) if tr.forward]))
    gap = int((tr.after - tr.before) / MINUTE)
    end_m = minute_of(tr.wall_from) + draw(st.integers(1, gap - 1))
    start_m = draw(st.integers(max(end_m - 300, 0), end_m - 1))
    day = tr.wall_from.date()
    weekly = draw(st.booleans())
    hours = Hours(
        zone=zone,
        start=minute_time(start_m),
        end=minute_time(end_m),
        slot_minutes=draw(st.integers(5, 120)),
        buffer_minutes=draw(st.integers(0, 30)),
        mode=draw(st.sampled_from(MODES)),
        clinic_id=case.hours[0].clinic_id,
        weekday=day.weekday() if weekly else None,
        on_date=None if weekly else day,
    )
    start = tr.instant - timedelta(minutes=draw(st.integers(0, 3 * 1440)))
    end = tr.instant + timedelta(minutes=draw(st.integers(1, 3 * 1440)))
    shift = start - case.start
    return Case(
        hours=[hours, *case.hours],
        start=start,
        end=end,
        busy=[(b + shift, e + shift) for b, e in case.busy],
        not_before=case.not_before + shift,
        not_after=case.not_after + shift,
    )


@FAST
@example(
    case=Case(
        hours=[Hours(NEW_YORK, time(1, 30), time(2, 30), 60, 0, "video", on_date=date(2026, 3, 8))],
        start=datetime(2026, 3, 7, tzinfo=UTC),
        end=datetime(2026, 3, 10, tzinfo=UTC),
        busy=[],
        not_before=datetime(2026, 3, 7, tzinfo=UTC),
        not_after=datetime(2026, 3, 10, tzinfo=UTC),
    )
)
@given(case=gap_end_case_st())
def test_free_slots_invariants_when_a_rule_ends_in_a_skipped_hour(case: Case) -> None:
    assert any(end_is_skipped(h, case.start, case.end) for h in case.hours)
    slots = case.run()
    check_invariants(case, slots)
    check_maximal(case, slots)


def test_same_slot_from_online_and_clinic_hours_does_not_crash() -> None:
    day = date(2026, 6, 1)
    online = Hours(NEW_YORK, time(9), time(10), 30, 0, "video", weekday=0)
    at_clinic = Hours(NEW_YORK, time(9), time(10), 30, 0, "video", CLINICS[0], weekday=0)
    slots = slots_on(NEW_YORK, day, [online, at_clinic])
    assert starts(slots, NEW_YORK) == ["2026-06-01T09:00:00-04:00", "2026-06-01T09:30:00-04:00"]
