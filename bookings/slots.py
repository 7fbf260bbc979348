"""Free slots, correct across daylight-saving changes.

Rules are wall-clock hours in the clinic's zone. A slot is generated per wall-clock start
time and then fixed as a UTC instant with an absolute length:
- a wall time that does not exist (the hour skipped when clocks go forward) gives no slot;
- a wall time that exists twice (the hour repeated when clocks go back) gives one slot, at
  its first occurrence (``fold=0``), so nothing is offered twice;
- slots are then removed where they overlap time off, an active appointment (plus the
  rule's buffer after it), fall inside the minimum notice or beyond the booking window.
Everything is computed in UTC once the instants are fixed, so no comparison mixes zones.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from operator import itemgetter
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

MIDNIGHT = time(0)  # as the end of hours: the midnight that ends their day (24:00)


class Slot(NamedTuple):  # a tuple: thousands are made per call, and tuples are cheap
    start: datetime  # UTC
    end: datetime  # UTC
    mode: str
    clinic_id: Any = None


@dataclass(frozen=True)
class Hours:
    """One source of bookable hours, already resolved to its zone: a weekly rule on the given
    ``weekday`` or one-off hours on the given ``on_date``."""

    zone: ZoneInfo
    start: time
    end: time  # 00:00: the midnight that ends the day
    slot_minutes: int
    buffer_minutes: int
    mode: str
    clinic_id: Any = None
    weekday: int | None = None
    on_date: date | None = None


def wall_to_utc(day: date, wall: time, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of a wall-clock time, ``None`` if that wall time does not exist."""
    local = datetime.combine(day, wall, tzinfo=zone).replace(fold=0)
    instant = local.astimezone(UTC)
    back = instant.astimezone(zone)
    if (back.date(), back.time().replace(tzinfo=None)) != (day, wall):
        return None  # skipped by a clock change
    return instant


def _source_days(hours: Hours, start: datetime, end: datetime) -> Iterator[date]:
    """The local days of ``hours`` (its weekday each week, or its one date) that can hold a
    slot starting in ``[start, end)``: a day either side of the range's local dates, since a
    day's hours can reach into the next day in UTC."""
    first = start.astimezone(hours.zone).date() - timedelta(days=1)
    last = end.astimezone(hours.zone).date() + timedelta(days=1)
    if hours.on_date is not None:
        if first <= hours.on_date <= last:
            yield hours.on_date
        return
    day, step = first, timedelta(days=1)
    if hours.weekday is not None:
        day += timedelta(days=(hours.weekday - first.weekday()) % 7)
        step = timedelta(days=7)
    while day <= last:
        yield day
        day += step


def first_overlap(
    new: Hours, existing: Iterable[Hours], start: datetime, end: datetime
) -> Hours | None:
    """The first of ``existing`` whose opening hours meet ``new``'s on some day in
    ``[start, end)``, each in its own zone (a clinic's hours and hours kept in the doctor's
    profile zone are compared as instants), or None. Each day's hours are the instants the
    slot engine opens and closes them at (:func:`_window`), so hours are refused exactly
    when their slots could meet."""

    def spans(hours: Hours) -> list[tuple[datetime, datetime]]:
        found = (_window(day, hours) for day in _source_days(hours, start, end))
        return [(a, b) for a, b in found if a < b]  # hours wholly in a skipped hour: none

    mine = spans(new)
    for other in existing:
        if any(a < d and c < b for a, b in spans(other) for c, d in mine):
            return other
    return None


def _window(day: date, hours: Hours) -> tuple[datetime, datetime]:
    """The instants ``hours`` open and close at on ``day``, as :func:`_day_slots` counts them:
    a wall time skipped by a clock change going forward is the instant of the change (the
    first wall time after it that exists), a repeated one its first occurrence. (An end in a
    skipped hour taken as its wall time at the earlier offset landed up to the skipped time
    after the close: hours meeting only there were refused as overlapping.)"""
    offset = _fixed_offset(day, hours.zone)
    if offset is not None:  # no clock change that day
        return (
            (datetime.combine(day, hours.start) - offset).replace(tzinfo=UTC),
            (_end_wall(day, hours) - offset).replace(tzinfo=UTC),
        )
    return _first_existing(day, hours.start, hours.zone), _window_end(day, hours)


def _candidates(hours: Hours, start: datetime, end: datetime) -> Iterator[Slot]:
    for day in _source_days(hours, start, end):
        yield from _day_slots(hours, day)[0]


class _DayGrid(NamedTuple):
    slots: tuple[Slot, ...]  # sorted by start; one length per source, so by end too
    starts: tuple[datetime, ...]
    ends: tuple[datetime, ...]


def _day_grids(hours: Hours, start: datetime, end: datetime) -> Iterator[_DayGrid]:
    for day in _source_days(hours, start, end):
        grid = _day_slots(hours, day)
        if grid.slots:
            yield grid


@lru_cache(maxsize=4096)
def _day_slots(hours: Hours, day: date) -> _DayGrid:
    """Every slot of one source of hours on one local day, before anything is taken away.
    Memoised by value: the same rules give the same grid to every viewer, and a changed rule
    is a different key (bounded: about 16 MB at most)."""
    step = timedelta(minutes=hours.slot_minutes + hours.buffer_minutes)
    length = timedelta(minutes=hours.slot_minutes)
    zone, mode, clinic_id = hours.zone, hours.mode, hours.clinic_id
    wall = datetime.combine(day, hours.start)
    last_start = _end_wall(day, hours) - length
    found: list[Slot] = []
    offset = _fixed_offset(day, zone)
    if offset is not None:
        # No clock change on this day (nearly every day): one subtraction per slot.
        instant = (wall - offset).replace(tzinfo=UTC)
        last = (last_start - offset).replace(tzinfo=UTC)
        while instant <= last:
            found.append(Slot(instant, instant + length, mode, clinic_id))
            instant += step
        return _grid(found)
    # The slot must also end inside the hours in absolute time: across a clock change a
    # wall-clock window is shorter or longer than it looks.
    window_end = _window_end(day, hours)
    while wall <= last_start:
        utc = wall_to_utc(day, wall.time(), zone)
        if utc is not None and utc + length <= window_end:
            found.append(Slot(utc, utc + length, mode, clinic_id))
        wall += step
    return _grid(found)


def _grid(slots: list[Slot]) -> _DayGrid:
    return _DayGrid(tuple(slots), tuple(s[0] for s in slots), tuple(s[1] for s in slots))


@lru_cache(maxsize=8192)
def _fixed_offset(day: date, zone: ZoneInfo) -> timedelta | None:
    """The zone's UTC offset on ``day`` if it is the same from this midnight to the next
    (no clock change that day), else ``None``. (No zone changes its clocks twice in a day.)"""
    first = datetime.combine(day, time(), tzinfo=zone).utcoffset()
    after = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).utcoffset()
    return first if first == after else None


def _end_wall(day: date, hours: Hours) -> datetime:
    """The wall clock ``hours`` close at on ``day``: an end of 00:00 is the midnight that ends
    the day (hours until 24:00), never the one that starts it."""
    if hours.end == MIDNIGHT:
        return datetime.combine(day + timedelta(days=1), MIDNIGHT)
    return datetime.combine(day, hours.end)


def _window_end(day: date, hours: Hours) -> datetime:
    """Where ``hours`` close on ``day``: at the clock change if their end is skipped by it."""
    end = _end_wall(day, hours)
    return _first_existing(end.date(), end.time(), hours.zone)


def _first_existing(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of the first wall time at or after ``wall`` on ``day`` that exists: a
    wall time skipped by a clock change going forward gives the instant of the change."""
    found = wall_to_utc(day, wall, zone)
    at = datetime.combine(day, wall)
    while found is None:
        at += timedelta(minutes=1)
        found = wall_to_utc(at.date(), at.time(), zone)
    return found


class _Busy:
    """Busy intervals merged and sorted, so that one binary search answers "does this slot
    meet any of them?" (the merged interval starting last before the slot's end has the
    largest end of all that start before it)."""

    def __init__(self, intervals: Iterable[tuple[datetime, datetime]]) -> None:
        merged: list[list[datetime]] = []
        for b_start, b_end in sorted(intervals):
            if merged and b_start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b_end)
            else:
                merged.append([b_start, b_end])
        self.starts = [m[0] for m in merged]
        self.ends = [m[1] for m in merged]


def free_slots(
    *,
    hours: Iterable[Hours],
    start: datetime,
    end: datetime,
    busy: Iterable[tuple[datetime, datetime]],
    not_before: datetime,
    not_after: datetime,
) -> list[Slot]:
    """Free slots starting in ``[start, end)``, in time order, none overlapping another.

    ``busy`` are UTC intervals (time off, active appointments; each source of hours keeps its
    own buffer after them); slots must
    start at or after ``not_before`` (minimum notice) and at or before ``not_after`` (window).
    Where two sources of hours overlap, the earlier slot wins.
    """
    busy_index = _Busy(busy)
    busy_starts, busy_ends = busy_index.starts, busy_index.ends
    lowest, highest = max(start, not_before), not_after
    found: list[Slot] = []
    for source in hours:
        after = timedelta(minutes=source.buffer_minutes)
        for slots, starts, ends in _day_grids(source, start, end):
            # The day's slots inside the window: start in [lowest, highest] and before end.
            first = bisect_left(starts, lowest)
            last = min(bisect_right(starts, highest), bisect_left(starts, end))
            if first >= last:
                continue
            # Take out the slots meeting a busy interval extended by the buffer the source
            # keeps after each appointment: whole index ranges, found by binary search over
            # the merged busy intervals that reach into this day (a few per day), so the
            # cost grows with busy intervals, not with slots.
            keep_from = first
            j = bisect_left(busy_starts, ends[last - 1])  # intervals starting before the end
            lo = bisect_left(
                busy_ends, starts[first] - after
            )  # and ending (+after) after the start
            for k in range(max(lo, 0), j):
                b_start, b_end = busy_starts[k], busy_ends[k] + after
                cut_from = max(bisect_right(ends, b_start), keep_from)
                cut_to = min(bisect_left(starts, b_end), last)
                if cut_from < cut_to:
                    found.extend(slots[keep_from:cut_from])
                    keep_from = cut_to
            if keep_from < last:
                found.extend(slots[keep_from:last])
    found.sort(key=itemgetter(0, 1))  # stable: ties keep the hours' order
    result: list[Slot] = []
    for slot in found:
        if result and slot.start < result[-1].end:
            continue
        result.append(slot)
    return result
