"""Scheduling and booking on PostgreSQL: slot computation, booking under open-loop load and the
same-slot race.

    .venv/bin/python bench/booking.py                   # ~5-8 minutes, seeding included
    .venv/bin/python bench/booking.py --help            # every option

Needs PostgreSQL (127.0.0.1:5432, user postgres) and Redis (127.0.0.1:6379) on loopback.
Creates its own database ``telemed_bench_booking`` (``dropdb --force`` first if it exists,
``createdb``, migrate) and drops it at the end (``dropdb --force``); deletes only its own Redis
keys (a random ``REDIS_KEY_PREFIX`` of this run). Every loop is bounded in count and time.

What it measures, in order:

1. **Slot computation, in process** (Django set up on that database, no server running): a
   verified doctor with weekly rules on every weekday (a clinic in Africa/Cairo on Saturday to
   Wednesday, one in Asia/Riyadh on Thursday and Friday, 08:00-14:00 local, 15-minute slots
   with a 5-minute buffer; video 15:00-20:00 in the doctor's zone every day, 15-minute slots),
   extra evening hours, time off (a vacation and some afternoons) and a few hundred
   appointments (active and cancelled) in the window. ``bookings.selectors.doctor_slots`` over
   3 months (``--slot-runs`` calls): p50/p95/p99 against the 10 ms target, split into its
   database part and ``bookings.slots.free_slots``; ``free_slots`` again without busy
   intervals (what the overlap test costs); a cProfile of ``--profile-runs`` calls. Then the
   same through HTTP on the server below: ``GET /api/v1/doctors/{id}/slots`` for 1-week ranges
   and for the longest range the API allows (62 days), one request at a time.
2. **Booking creation under open-loop load** on one Uvicorn process (``.venv/bin/uvicorn
   --host 127.0.0.1 --port P --no-access-log --lifespan off telemed.asgi:application``,
   DEBUG=false, PostgreSQL with the psycopg pool, Redis, no in-process task worker,
   LOG_LEVEL=WARNING). ``POST /api/v1/appointments`` on DISTINCT free slots of ``--doctors``
   prepared doctors, in random order, each by a patient who is free at that time (a patient
   cannot hold two overlapping appointments), with an ``Idempotency-Key`` per request (as a
   retrying client sends it) and, for comparison, without. Request ``i`` is due at
   ``t0 + i / rate`` and its latency counts from that due time (no coordinated omission; the
   load generator of ``bench/http_baseline.py``, its CPU accounting and its quiet-machine
   check are reused). ``--rate`` for ``--duration`` s: p50/p95/p99, status mix, 5xx (the
   appointments created are counted in the database too). Then the maximum sustainable rate:
   open-loop steps (x1.5, then bisection) until p99 > ``--slo-p99-ms`` or any error.
3. **The same-slot race**: ``--race`` patients (one access token each), one connection each,
   opened beforehand, all released together on the same doctor and slot, ``--race-rounds``
   times on different slots: outcome counts (expected exactly one 201 and the rest 409
   ``booking.slot_taken``, no 5xx), latency from the release, and the database checked.
4. **Probes**: two single requests that check behaviour the load does not show (a slot right
   after a booked one in a rule without buffer; a patient who is busy at that time).

Patients' access tokens: ``--logins`` patients log in through ``POST /_allauth/app/v1/auth/
login`` (allauth limits logins to 30/min per IP); every other session is made the way that
endpoint makes one, in this process on the same database and Redis (``django.contrib.auth.
login`` on a cached_db session, then the project's JWT strategy), and every token is checked
once with ``GET /api/v1/whoami``. Access tokens live 5 minutes, so sessions are minted anew
before each run.

Progress goes to stderr; a markdown section for bench/RESULTS.md to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime as dt
import importlib.metadata
import itertools
import json
import math
import os
import platform
import pstats
import random
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import aiohttp
import http_baseline as hb  # bench/http_baseline.py: the open-loop load generator's pieces

if TYPE_CHECKING:
    from accounts.models import User
    from doctors.models import Clinic, DoctorProfile

ROOT = Path(__file__).resolve().parent.parent
DB_NAME = "telemed_bench_booking"
DATABASE_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
PREFIX = f"telemed-bench-booking-{uuid.uuid4().hex[:8]}"
PASSWORD = "Bench-booking-2026-pw"
BOOK = "/api/v1/appointments"
LOGIN = "/_allauth/app/v1/auth/login"
WHOAMI = "/api/v1/whoami"
INFO = "/api/v1/info"
CAIRO = ZoneInfo("Africa/Cairo")
RIYADH = ZoneInfo("Asia/Riyadh")
SLOT_RANGE_DAYS = 92  # "3 months"
TARGET_SLOTS_P95_MS = 10.0
TARGET_BOOK_P95_MS = 50.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def pct(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0-100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(1, min(len(ordered), math.ceil(q / 100 * len(ordered)))) - 1]


def _f(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{value:.{digits}f}"


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


# --- Database and Redis ------------------------------------------------------------------


def _pg(*command: str, check: bool = True) -> None:
    subprocess.run(
        [*command, "-h", "127.0.0.1", "-U", "postgres", DB_NAME], check=check, timeout=120
    )


def create_database() -> None:
    subprocess.run(
        ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", DB_NAME],
        check=True,
        timeout=120,
    )
    _pg("createdb")


def drop_database() -> None:
    from django.db import connections

    connections.close_all()
    subprocess.run(
        ["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", "--force", DB_NAME],
        check=False,
        timeout=120,
    )
    log(f"dropped database {DB_NAME}")


def bench_env(redis_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of this process and of the server it starts: the benchmark's own
    database and Redis prefix, production-like settings, no in-process task worker."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "telemed.settings",
        "DJANGO_ENV": "development",
        "DEBUG": "false",
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": redis_url,
        "REDIS_KEY_PREFIX": PREFIX,
        "TASK_WORKER_IN_PROCESS": "false",
        "LOG_LEVEL": "WARNING",
        # Development secrets (SECRET_KEY, JWT key) shared by this process and the server.
        "VAR_DIR": str(var_dir),
        # Each bench patient books many slots: the quota is still checked, never reached.
        "BOOKING_MAX_UPCOMING": "1000000",
        "BOOKING_MAX_UPCOMING_PER_DOCTOR": "1000000",
        **extra,
    }


def delete_redis_keys(redis_url: str) -> int:
    """Only this run's keys (its own random prefix: cache, sessions, rate limits)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{PREFIX}:*", count=1000))
        for start in range(0, len(keys), 1000):  # bounded by the keys found
            client.delete(*keys[start : start + 1000])
        return len(keys)
    finally:
        client.close()


# --- Seeding -----------------------------------------------------------------------------


def make_users(n: int, role: str, tag: str, password_hash: str) -> list[User]:
    """``n`` active users with a verified e-mail address (allauth's ``EmailAddress``), all
    with the same password hash (one Argon2 hash for all of them: hashing is 0.17 s)."""
    from allauth.account.models import EmailAddress

    from accounts.models import PatientProfile, Role, User

    users = [
        User(
            email=f"{tag}{i}@bench.example",
            password=password_hash,
            role=role,
            first_name=tag.title(),
            last_name=str(i),
            time_zone="Africa/Cairo",
        )
        for i in range(n)
    ]
    User.objects.bulk_create(users, batch_size=500)
    EmailAddress.objects.bulk_create(
        [EmailAddress(user=u, email=u.email, primary=True, verified=True) for u in users],
        batch_size=500,
    )
    if role == Role.PATIENT:
        PatientProfile.objects.bulk_create([PatientProfile(user=u) for u in users])
    return users


def make_clinic(
    profile: DoctorProfile, name: str, city: str, country: str, lat: float, lng: float, tz: str
) -> Clinic:
    from doctors import geo
    from doctors.models import Clinic

    clinic = Clinic(
        doctor=profile,
        name=name,
        address="1 Bench St",
        city=city,
        country=country,
        latitude=lat,
        longitude=lng,
        time_zone=tz,
    )
    for resolution, cell in geo.cells_for(lat, lng).items():
        setattr(clinic, geo.column_for(resolution), cell)
    clinic.save()
    return clinic


def make_doctor(user: User, **fields: Any) -> DoctorProfile:
    from doctors.models import DoctorProfile, Verification

    return DoctorProfile.objects.create(
        user=user,
        verification=Verification.VERIFIED,
        verified_at=dt.datetime.now(dt.UTC),
        time_zone="Africa/Cairo",
        offers_in_person=True,
        offers_video=True,
        **fields,
    )


def cairo_midnight(days_ahead: int) -> dt.datetime:
    today = dt.datetime.now(CAIRO).date()
    return dt.datetime.combine(today + dt.timedelta(days=days_ahead), dt.time(0), tzinfo=CAIRO)


@dataclass
class BusyDoctor:
    doctor: Any
    rules: int = 0
    extra_hours: int = 0
    time_off: int = 0
    active: int = 0
    cancelled: int = 0
    range_start: dt.datetime = field(default_factory=lambda: cairo_midnight(0))
    range_end: dt.datetime = field(default_factory=lambda: cairo_midnight(SLOT_RANGE_DAYS))


def seed_busy_doctor(password_hash: str, rng: random.Random, appointments: int) -> BusyDoctor:
    """The doctor of part 1 (see the module docstring)."""
    from accounts.models import Role
    from bookings.models import (
        Appointment,
        AvailabilityRule,
        BookingPolicy,
        ExtraHours,
        Status,
        TimeOff,
    )
    from bookings.selectors import doctor_slots

    [user] = make_users(1, Role.DOCTOR, "busydoctor", password_hash)
    doctor = make_doctor(user)
    cairo = make_clinic(doctor, "Cairo clinic", "Cairo", "EG", 30.0444, 31.2357, "Africa/Cairo")
    riyadh = make_clinic(doctor, "Riyadh clinic", "Riyadh", "SA", 24.7136, 46.6753, "Asia/Riyadh")
    rules = []
    for weekday in range(7):
        clinic = riyadh if weekday in (3, 4) else cairo  # Thu, Fri in Riyadh
        rules.append(
            AvailabilityRule(
                doctor=doctor,
                clinic=clinic,
                mode="in_person",
                weekday=weekday,
                start=dt.time(8),
                end=dt.time(14),
                slot_minutes=15,
                buffer_minutes=5,
            )
        )
        rules.append(
            AvailabilityRule(
                doctor=doctor,
                clinic=None,
                mode="video",
                weekday=weekday,
                start=dt.time(15),
                end=dt.time(20),
                slot_minutes=15,
                buffer_minutes=0,
            )
        )
    AvailabilityRule.objects.bulk_create(rules)
    extras = [
        ExtraHours(
            doctor=doctor,
            clinic=None,
            mode="video",
            date=(cairo_midnight(day)).date(),
            start=dt.time(20),
            end=dt.time(22),
            slot_minutes=15,
            buffer_minutes=0,
        )
        for day in range(4, SLOT_RANGE_DAYS, 11)
    ]
    ExtraHours.objects.bulk_create(extras)
    offs = [
        TimeOff(doctor=doctor, start=cairo_midnight(40), end=cairo_midnight(45), reason="leave")
    ]
    for day in range(9, SLOT_RANGE_DAYS, 13):  # afternoons off
        base = cairo_midnight(day)
        offs.append(
            TimeOff(
                doctor=doctor,
                start=base + dt.timedelta(hours=13),
                end=base + dt.timedelta(hours=20),
                reason="afternoon off",
            )
        )
    TimeOff.objects.bulk_create(offs)
    BookingPolicy.objects.create(doctor=doctor, min_notice_minutes=60, window_days=100)

    out = BusyDoctor(doctor=doctor, rules=len(rules), extra_hours=len(extras), time_off=len(offs))
    free = doctor_slots(doctor=doctor, start=out.range_start, end=out.range_end)
    patients = make_users(10, Role.PATIENT, "busypatient", password_hash)
    cancelled = max(1, appointments // 6)
    chosen = rng.sample(free, min(len(free), appointments + cancelled))
    statuses = [Status.CONFIRMED] * 9 + [Status.PENDING]
    rows = []
    for i, slot in enumerate(chosen):  # bounded by the sample
        status = Status.CANCELLED if i < cancelled else rng.choice(statuses)
        rows.append(
            Appointment(
                doctor=doctor,
                patient=patients[i % len(patients)],  # one doctor's slots never overlap
                clinic_id=slot.clinic_id,
                mode=slot.mode,
                start=slot.start,
                end=slot.end,
                status=status,
            )
        )
    Appointment.objects.bulk_create(rows)
    out.active = len(rows) - cancelled
    out.cancelled = cancelled
    return out


def seed_simple_doctors(
    n: int, tag: str, password_hash: str, *, video_buffer_probe: bool = False
) -> list[tuple[Any, Any]]:
    """``n`` verified doctors with a Cairo clinic, open every day 08:00-20:00 in person,
    15-minute slots without buffer, the platform's default policy (60 min notice, 60 days).
    ``video_buffer_probe``: instead, in person 08:00-12:00 with a 5-minute buffer and video
    15:00-17:00 without buffer (for the probe)."""
    from accounts.models import Role
    from bookings.models import AvailabilityRule, BookingPolicy

    users = make_users(n, Role.DOCTOR, tag, password_hash)
    out = []
    rules = []
    for i, user in enumerate(users):
        doctor = make_doctor(user)
        clinic = make_clinic(
            doctor, f"{tag} clinic {i}", "Cairo", "EG", 30.0 + i * 1e-4, 31.2, "Africa/Cairo"
        )
        for weekday in range(7):
            if video_buffer_probe:
                rules.append(
                    AvailabilityRule(
                        doctor=doctor,
                        clinic=clinic,
                        mode="in_person",
                        weekday=weekday,
                        start=dt.time(8),
                        end=dt.time(12),
                        slot_minutes=15,
                        buffer_minutes=5,
                    )
                )
                rules.append(
                    AvailabilityRule(
                        doctor=doctor,
                        clinic=None,
                        mode="video",
                        weekday=weekday,
                        start=dt.time(15),
                        end=dt.time(17),
                        slot_minutes=15,
                        buffer_minutes=0,
                    )
                )
            else:
                rules.append(
                    AvailabilityRule(
                        doctor=doctor,
                        clinic=clinic,
                        mode="in_person",
                        weekday=weekday,
                        start=dt.time(8),
                        end=dt.time(20),
                        slot_minutes=15,
                        buffer_minutes=0,
                    )
                )
        BookingPolicy.objects.create(doctor=doctor, min_notice_minutes=60, window_days=60)
        out.append((doctor, clinic))
    AvailabilityRule.objects.bulk_create(rules, batch_size=1000)
    return out


# --- Tokens ------------------------------------------------------------------------------


def mint_tokens(users: Sequence[User]) -> list[str]:
    """An access token per user, from a new server-side session made the way allauth's login
    endpoint makes one (``django.contrib.auth.login`` on a cached_db session, then the
    project's JWT strategy), without the password check and the per-IP login rate limit."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import login
    from django.contrib.auth.models import AnonymousUser
    from django.test import RequestFactory

    from accounts.tokens import TokenStrategy

    engine = import_module(settings.SESSION_ENGINE)
    factory = RequestFactory()
    strategy = TokenStrategy()
    tokens = []
    for user in users:  # bounded by the users
        request = factory.post(LOGIN)
        request.session = engine.SessionStore()
        request.user = AnonymousUser()
        login(request, user, backend="allauth.account.auth_backends.AuthenticationBackend")
        request.session.save()
        token = strategy.create_access_token(request)
        assert token
        tokens.append(token)
    return tokens


def _http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")[:500]


def login_over_http(base: str, users: Sequence[User]) -> list[str]:
    tokens = []
    for user in users:  # bounded; a few users only (allauth allows 30 logins/min per IP)
        status, body = _http("POST", base + LOGIN, {"email": user.email, "password": PASSWORD})
        if status != 200:
            raise RuntimeError(f"login of {user.email}: {status} {body}")
        tokens.append(body["meta"]["access_token"])
    return tokens


def check_tokens(base: str, tokens: Sequence[str], users: Sequence[User]) -> None:
    for token, user in zip(tokens, users, strict=True):  # bounded by the tokens
        status, body = _http("GET", base + WHOAMI, headers={"Authorization": f"Bearer {token}"})
        if status != 200 or str(body.get("id")) != str(user.pk):
            raise RuntimeError(f"token of {user.email} refused: {status} {body}")


# --- Part 1: slot computation ------------------------------------------------------------


@dataclass
class SlotResult:
    runs: list[float] = field(default_factory=list)  # ms, whole doctor_slots
    free_slots: list[float] = field(default_factory=list)  # ms, the free_slots call inside
    no_busy: list[float] = field(default_factory=list)  # ms, free_slots without busy intervals
    fresh: list[float] = field(default_factory=list)  # ms, doctor_slots, schedule from the DB
    slots: int = 0
    hours: int = 0
    busy: int = 0
    candidates: int = 0
    queries: list[str] = field(default_factory=list)
    busy_cores: float = 0.0
    profile_runs: int = 0
    profile_ms: float = 0.0
    profile_rows: list[tuple[str, float, float, float]] = field(default_factory=list)
    profile_top: list[tuple[str, float, float, float]] = field(default_factory=list)
    http_week: list[float] = field(default_factory=list)
    http_week_items: list[int] = field(default_factory=list)
    http_long: list[float] = field(default_factory=list)
    http_long_items: list[int] = field(default_factory=list)
    http_errors: Counter[str] = field(default_factory=Counter)


# Functions whose cumulative time the profile summary shows, in this order.
PROFILED = [
    ("selectors.py", "doctor_slots", "`selectors.doctor_slots` (whole call)"),
    ("selectors.py", "schedule_of", "`schedule_of` (policy + hours, from the cache)"),
    ("query.py", "_fetch_all", "Django querysets evaluated (ORM included)"),
    ("utils.py", "_execute", "of which SQL round trips (`CursorWrapper._execute`)"),
    ("slots.py", "free_slots", "`slots.free_slots`"),
    ("slots.py", "_day_slots", "`_day_slots` (a day's grid of one source; memoised)"),
    ("slots.py", "wall_to_utc", "`wall_to_utc` (zone conversions, days with a clock change)"),
]


def slot_computation(busy: BusyDoctor, runs: int, profile_runs: int, budget_s: float) -> SlotResult:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bookings import selectors, slots

    out = SlotResult()
    doctor, start, end = busy.doctor, busy.range_start, busy.range_end
    captured: dict[str, Any] = {}
    original = selectors.free_slots

    def timed_free_slots(**kwargs: Any) -> list[Any]:
        t = time.perf_counter()
        result = original(**kwargs)
        captured["ms"] = _ms(t)
        captured["kwargs"] = kwargs
        return result

    for _ in range(5):  # warm-up
        selectors.doctor_slots(doctor=doctor, start=start, end=end)
    with CaptureQueriesContext(connection) as queries:
        found = selectors.doctor_slots(doctor=doctor, start=start, end=end)
    out.queries = [q["sql"] for q in queries.captured_queries]
    out.slots = len(found)

    selectors.free_slots = timed_free_slots  # type: ignore[assignment]  # measuring only
    try:
        busy0, wall0 = hb._busy_seconds(), time.perf_counter()
        deadline = time.monotonic() + budget_s
        for i in range(runs):  # bounded by runs and the time budget
            if time.monotonic() > deadline:
                log(f"  slot computation: time budget spent after {i} runs")
                break
            t = time.perf_counter()
            selectors.doctor_slots(doctor=doctor, start=start, end=end)
            out.runs.append(_ms(t))
            out.free_slots.append(captured["ms"])
        out.busy_cores = (hb._busy_seconds() - busy0) / (time.perf_counter() - wall0)
    finally:
        selectors.free_slots = original  # type: ignore[assignment]

    for _ in range(min(runs, 100)):  # bounded: the same call with the schedule read fresh
        t = time.perf_counter()
        selectors.doctor_slots(
            doctor=doctor, start=start, end=end, schedule=selectors.schedule_of(doctor, fresh=True)
        )
        out.fresh.append(_ms(t))

    kwargs = captured["kwargs"]
    hours = list(kwargs["hours"])
    out.hours = len(hours)
    out.busy = len(list(kwargs["busy"]))
    out.candidates = sum(
        1 for h in hours for _ in slots._candidates(h, kwargs["start"], kwargs["end"])
    )
    for _ in range(min(runs, 50)):  # bounded
        t = time.perf_counter()
        slots.free_slots(**{**kwargs, "busy": []})
        out.no_busy.append(_ms(t))

    if profile_runs:
        profiler = cProfile.Profile()
        t = time.perf_counter()
        profiler.enable()
        for _ in range(profile_runs):  # bounded
            selectors.doctor_slots(doctor=doctor, start=start, end=end)
        profiler.disable()
        out.profile_runs = profile_runs
        out.profile_ms = _ms(t) / profile_runs
        # pstats keeps its table in an attribute typeshed does not declare.
        stats: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = vars(
            pstats.Stats(profiler)
        )["stats"]
        for suffix, name, label in PROFILED:
            calls = tt = ct = 0.0
            for (filename, _line, func), (_cc, nc, own, cum, _callers) in stats.items():
                if (
                    func == name
                    and filename.endswith(suffix)
                    and (suffix not in ("selectors.py", "slots.py") or "/bookings/" in filename)
                ):
                    calls += nc
                    tt += own
                    ct += cum
            out.profile_rows.append(
                (label, calls / profile_runs, ct * 1000 / profile_runs, tt * 1000 / profile_runs)
            )
        ranked = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:12]
        for (filename, line, func), (_cc, nc, own, cum, _callers) in ranked:
            where = "/".join(Path(filename).parts[-2:]) if filename.startswith("/") else filename
            out.profile_top.append(
                (
                    f"`{where}:{line}({func})`",
                    nc / profile_runs,
                    own * 1000 / profile_runs,
                    cum * 1000 / profile_runs,
                )
            )
    return out


async def http_slots(base: str, busy: BusyDoctor, out: SlotResult, week: int, long: int) -> None:
    """``GET /slots`` one request at a time (service time, no queueing): 1-week ranges at
    random weeks of the 3 months, and 62-day ranges (the API's maximum)."""
    rng = random.Random(7)  # noqa: S311 - load generation
    doctor_id = busy.doctor.id
    today = busy.range_start.date()
    async with hb._session(1, 30.0) as session:

        async def get(days: int, times: list[float], items: list[int], n: int) -> None:
            for _ in range(n):  # bounded by n
                first = today + dt.timedelta(days=rng.randrange(0, SLOT_RANGE_DAYS - days))
                last = first + dt.timedelta(days=days - 1)
                url = f"{base}/api/v1/doctors/{doctor_id}/slots?from={first}&to={last}&tz=Africa/Cairo"
                t = hb.clock()
                async with session.get(url) as response:
                    body = await response.read()
                    elapsed = (hb.clock() - t) * 1000
                    if response.status != 200:
                        out.http_errors[f"http_{response.status}"] += 1
                        continue
                times.append(elapsed)
                items.append(len(json.loads(body)["items"]))

        await get(7, [], [], 10)  # warm-up
        await get(7, out.http_week, out.http_week_items, week)
        await get(62, out.http_long, out.http_long_items, long)


# --- Part 2: booking under open-loop load ------------------------------------------------


class Plan:
    """Distinct free slots of the load doctors in random order. The slot at time index ``t``
    of doctor ``d`` goes to patient ``(d + t) % P``: at one instant every doctor has another
    patient (P >= number of doctors), so no patient ever gets two overlapping bookings."""

    def __init__(
        self,
        doctors: Sequence[tuple[Any, Any]],
        patients: int,
        start: dt.datetime,
        end: dt.datetime,
        seed: int,
    ) -> None:
        from bookings.selectors import doctor_slots

        if patients < len(doctors):
            raise SystemExit("--patients must be at least --doctors")
        grids = [
            doctor_slots(doctor=d, start=start, end=end, ignore_bookings=True) for d, _ in doctors
        ]
        self.times = [s.start for s in grids[0]]
        for grid in grids:
            if [s.start for s in grid] != self.times:
                raise RuntimeError("the load doctors' slot grids differ")
        self.length = grids[0][0].end - grids[0][0].start
        self.doctors = doctors
        self.patients = patients
        self.pairs = [(t, d) for t in range(len(self.times)) for d in range(len(doctors))]
        random.Random(seed).shuffle(self.pairs)  # noqa: S311 - load generation
        self.used = 0

    def take(self, n: int) -> list[tuple[Any, Any, dt.datetime, int]]:
        """``n`` bookings: (doctor, clinic, start, patient index)."""
        if self.used + n > len(self.pairs):
            raise RuntimeError(f"out of free slots ({len(self.pairs)} planned)")
        chosen = self.pairs[self.used : self.used + n]
        self.used += n
        return [
            (self.doctors[d][0], self.doctors[d][1], self.times[t], (d + t) % self.patients)
            for t, d in chosen
        ]


@dataclass
class Outcome:
    statuses: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    created: int = 0  # appointments the database gained during the run


def _request(
    doctor: Any, clinic: Any, start: dt.datetime, token: str, idempotency: bool
) -> tuple[bytes, dict[str, str]]:
    body = {
        "doctor_id": str(doctor.id),
        "start": start.astimezone(CAIRO).isoformat(),  # with its offset (+02:00 / +03:00)
        "mode": "in_person",
        "clinic_id": str(clinic.id),
    }
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if idempotency:
        headers["Idempotency-Key"] = uuid.uuid4().hex
    return json.dumps(body).encode(), headers


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    outcome: Outcome,
) -> tuple[str | None, float]:
    """One booking; (None if 201 else a short name of the outcome, when it ended)."""
    try:
        async with session.post(url, data=body, headers=headers) as response:
            raw = await response.read()
            done = hb.clock()
            if response.status == 201:
                outcome.statuses["201"] += 1
                return None, done
            code = ""
            with contextlib.suppress(ValueError, KeyError, TypeError):
                code = json.loads(raw)["error"]["code"]
            name = f"{response.status} {code}".strip()
    except TimeoutError:
        name, done, raw = "timeout", hb.clock(), b""
    except aiohttp.ClientError as exc:
        name, done, raw = type(exc).__name__, hb.clock(), b""
    outcome.statuses[name] += 1
    if sum(1 for e in outcome.examples if e.startswith(f"[{name}]")) < 2:
        auth = {k: ("Bearer ..." if k == "Authorization" else v) for k, v in headers.items()}
        outcome.examples.append(
            f"[{name}] POST {BOOK} {auth} {body.decode()} -> {raw[:400].decode(errors='replace')}"
        )
    return name, done


async def open_loop(
    session: aiohttp.ClientSession,
    url: str,
    requests: Sequence[tuple[bytes, dict[str, str]]],
    outcome: Outcome,
    connections: int,
    rate: float,
    duration: float,
    drain: float,
    kind: str,
) -> hb.Run:
    """``http_baseline.open_loop`` with a prepared POST per request: request ``i`` is due at
    ``t0 + i / rate`` and its latency counts from then, waiting for a free connection
    included; requests still unsent ``drain`` s after the schedule are counted as unsent."""
    total = len(requests)
    run = hb.Run(kind=kind, rate=rate, duration=duration, scheduled=total)
    t0 = hb.clock() + 0.05
    give_up = t0 + duration + drain
    indices = itertools.count()
    last_done = t0

    async def worker() -> None:
        nonlocal last_done
        for i in indices:  # bounded: stops at ``total``
            if i >= total:
                return
            due = t0 + i / rate
            now = hb.clock()
            if now > give_up:
                run.unsent += 1
                continue
            if due > now:
                await asyncio.sleep(due - now)
            body, headers = requests[i]
            error, done = await _post(session, url, body, headers, outcome)
            hb._record(run, error, done - due)
            last_done = max(last_done, done)

    await asyncio.gather(*(worker() for _ in range(connections)))
    run.elapsed = max(duration, last_done - t0)
    return run


def errors(run: hb.Run) -> str:
    detail = dict(run.errors)
    if run.unsent:
        detail["unsent"] = run.unsent
    return f"{run.error_count} {detail}" if run.error_count else "0"


def five_xx(outcome: Outcome) -> int:
    return sum(n for name, n in outcome.statuses.items() if name[:1] == "5")


def line(run: hb.Run) -> str:
    return (
        f"rate {run.rate or 0:6.0f}/s achieved {run.achieved:6.1f}/s p50 {run.percentile(50):7.1f} "
        f"p95 {run.percentile(95):7.1f} p99 {run.percentile(99):7.1f} ms errors {errors(run)} "
        f"cpu server {run.server_cpu:.0%} db+redis {run.deps_cpu:.0%} client "
        f"{run.client_cpu:.0%} other {run.other_cpu:.0%}"
    )


def sustainable(run: hb.Run, slo_p99_ms: float) -> bool:
    assert run.rate is not None
    return (
        run.error_count == 0
        and run.achieved >= 0.95 * run.rate
        and run.percentile(99) <= slo_p99_ms
    )


@dataclass
class Load:
    """What part 2 needs between runs."""

    server: hb.Server
    loop: asyncio.AbstractEventLoop
    session: aiohttp.ClientSession
    plan: Plan
    patients: list[Any]
    doctor_ids: list[Any]
    login_tokens: list[str] = field(default_factory=list)  # for the first patients, once


def wait_server_idle(pid: int, max_wait: float) -> None:
    """After an overloaded run the server still works off requests the client gave up on:
    wait (at most ``max_wait`` s) until it used less than 5% of a core for half a second."""
    deadline = time.monotonic() + max_wait
    while time.monotonic() < deadline:  # bounded by max_wait
        cpu0 = hb._cpu_seconds(pid)
        time.sleep(0.5)
        if hb._cpu_seconds(pid) - cpu0 < 0.025:
            return
    log(f"  (the server was still busy after {max_wait:.0f} s)")


def measure(
    load: Load, args: argparse.Namespace, rate: float, duration: float, kind: str, keys: bool
) -> tuple[hb.Run, Outcome]:
    """One open-loop booking run, after waiting (up to ``--quiet-wait`` s) for a quiet machine,
    with http_baseline's CPU accounting (server process, this client, PostgreSQL + Redis,
    everything else). Fresh sessions are minted before each attempt (tokens live 5 minutes).
    A run during which other work used more than ``--quiet-cores`` is repeated at most
    ``--retries`` times, on new slots; the last attempt counts."""
    from bookings.models import Appointment

    pid = load.server.popen.pid
    budget = duration + args.drain + args.timeout + 15
    url = load.server.base + BOOK
    run: hb.Run | None = None
    outcome = Outcome()
    for attempt in range(1, args.retries + 2):  # bounded by --retries
        wait_server_idle(pid, 30.0)
        load.loop.run_until_complete(hb.wait_until_quiet(args.quiet_wait, args.quiet_cores))
        tokens = mint_tokens(load.patients)
        if load.login_tokens:  # real logins, used once (they expire after 5 minutes)
            tokens[: len(load.login_tokens)] = load.login_tokens
            load.login_tokens = []
        bookings = load.plan.take(max(1, round(rate * duration)))
        requests = [_request(d, c, s, tokens[p], keys) for d, c, s, p in bookings]
        outcome = Outcome()
        before = Appointment.objects.filter(doctor_id__in=load.doctor_ids).count()
        server0, client0 = hb._cpu_seconds(pid), time.process_time()
        deps0, busy0, wall0 = hb._dependency_seconds(), hb._busy_seconds(), hb.clock()
        run = load.loop.run_until_complete(
            asyncio.wait_for(
                open_loop(
                    load.session,
                    url,
                    requests,
                    outcome,
                    args.connections,
                    rate,
                    duration,
                    args.drain,
                    kind,
                ),
                timeout=budget,
            )
        )
        wall = hb.clock() - wall0
        run.server_cpu = (hb._cpu_seconds(pid) - server0) / wall
        run.client_cpu = (time.process_time() - client0) / wall
        run.deps_cpu = (hb._dependency_seconds() - deps0) / wall
        busy = (hb._busy_seconds() - busy0) / wall
        run.other_cpu = max(0.0, busy - run.server_cpu - run.client_cpu - run.deps_cpu)
        run.attempts = attempt
        time.sleep(0.5)  # requests the client gave up on may still finish on the server
        outcome.created = Appointment.objects.filter(doctor_id__in=load.doctor_ids).count() - before
        if run.other_cpu <= args.quiet_cores:
            break
        if attempt <= args.retries:
            log(f"  (other work used {run.other_cpu:.2f} cores during the run: repeating it)")
    assert run is not None
    return run, outcome


def max_rate(
    load: Load, args: argparse.Namespace
) -> tuple[float | None, list[tuple[hb.Run, Outcome]]]:
    """Step up x1.5 from ``--step-start`` until a step fails, then bisect (to within 8%)."""
    best: float | None = None
    failed: float | None = None
    rate = args.step_start
    steps: list[tuple[hb.Run, Outcome]] = []
    deadline = time.monotonic() + args.step_budget
    for _ in range(args.max_steps):  # bounded by --max-steps and --step-budget
        if time.monotonic() > deadline:
            log("  step-up budget spent")
            break
        run, outcome = measure(load, args, rate, args.step_duration, "step", keys=True)
        steps.append((run, outcome))
        ok = sustainable(run, args.slo_p99_ms)
        log(f"  step {line(run)} -> {'ok' if ok else 'NOT sustainable'}")
        if ok:
            best = rate
        else:
            failed = rate
        if failed is None:
            rate = round(rate * 1.5)
        elif best is None:
            rate = round(rate / 2)
            if rate < 2:
                break
        else:
            rate = round((best + failed) / 2)
            if failed / best <= 1.08 or rate in (best, failed):
                break
    return best, steps


@dataclass
class BookingProfile:
    n: int = 0
    wall: list[float] = field(default_factory=list)  # ms per booking, in process, no profiler
    queries: list[str] = field(default_factory=list)
    profile_ms: float = 0.0
    rows: list[tuple[str, float, float, float]] = field(default_factory=list)
    top: list[tuple[str, float, float, float]] = field(default_factory=list)


# Functions whose cumulative time the booking profile shows: (file suffix, name, label).
BOOKING_PROFILED = [
    ("django/test/client.py", "request", "whole request through Django (test client, no ASGI)"),
    ("accounts/auth.py", "__call__", "JWT authentication (`accounts.auth.JWTAuth`)"),
    ("core/idempotency.py", "run_once", "`run_once` (Idempotency-Key) including the booking"),
    ("bookings/services.py", "appointment_book", "`services.appointment_book` (transaction)"),
    ("bookings/services.py", "_matching_slot", "`_matching_slot` (free slots of +-1 minute)"),
    ("bookings/selectors.py", "schedule_of", "`schedule_of` (policy + hours, read fresh)"),
    ("bookings/services.py", "_history", "`_history` (StatusChange insert)"),
    ("bookings/services.py", "tell_both", "`tell_both` (2 notifications, rendered)"),
    ("realtime/services.py", "send", "on commit: 2 pushes to the Redis channel layer"),
    ("django/db/transaction.py", "__exit__", "`atomic` exits (commits included)"),
    ("django/db/backends/utils.py", "_execute", "all SQL round trips (`CursorWrapper._execute`)"),
    ("ninja/operation.py", "_result_to_response", "Ninja response validation + JSON"),
]


def profile_bookings(plan: Plan, patients: Sequence[Any], n: int) -> BookingProfile:
    """``n`` bookings in this process through the Django test client (the same middleware,
    view, service and queries as the server, without ASGI and Uvicorn), timed, then ``n``
    more under cProfile; the queries of one booking."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    out = BookingProfile(n=n)
    tokens = mint_tokens(patients)
    client = Client()

    def book(count: int) -> list[float]:
        times = []
        for doctor, clinic, start, patient in plan.take(count):  # bounded by count
            body, headers = _request(doctor, clinic, start, tokens[patient], True)
            t = time.perf_counter()
            response = client.post(
                BOOK,
                body,
                content_type="application/json",
                headers={k: v for k, v in headers.items() if k != "Content-Type"},
            )
            times.append(_ms(t))
            if response.status_code != 201:
                raise RuntimeError(
                    f"in-process booking: {response.status_code} {response.content[:300]!r}"
                )
        return times

    book(10)  # warm-up
    with CaptureQueriesContext(connection) as queries:
        book(1)
    out.queries = [q["sql"] for q in queries.captured_queries]
    out.wall = book(n)
    profiler = cProfile.Profile()
    t = time.perf_counter()
    profiler.enable()
    book(n)
    profiler.disable()
    out.profile_ms = _ms(t) / n
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = vars(
        pstats.Stats(profiler)
    )["stats"]
    for suffix, name, label in BOOKING_PROFILED:
        calls = tt = ct = 0.0
        for (filename, _line, func), (_cc, nc, own, cum, _callers) in stats.items():
            if func == name and filename.endswith(suffix):
                calls += nc
                tt += own
                ct += cum
        out.rows.append((label, calls / n, ct * 1000 / n, tt * 1000 / n))
    ranked = sorted(stats.items(), key=lambda item: item[1][2], reverse=True)[:12]
    for (filename, line_no, func), (_cc, nc, own, cum, _callers) in ranked:
        where = "/".join(Path(filename).parts[-2:]) if filename.startswith("/") else filename
        out.top.append((f"`{where}:{line_no}({func})`", nc / n, own * 1000 / n, cum * 1000 / n))
    return out


# --- Part 3: the same-slot race ----------------------------------------------------------


@dataclass
class RaceRound:
    slot: dt.datetime
    statuses: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # ms from the release
    all_done_ms: float = 0.0
    connections: int = 0
    active_in_db: int = 0
    winner_matches: bool = False
    examples: list[str] = field(default_factory=list)


async def race_round(
    base: str, tokens: Sequence[str], doctor: Any, clinic: Any, slot: dt.datetime, timeout: float
) -> tuple[RaceRound, str | None]:
    """One connection per request, opened beforehand; every request waits at a gate and all
    are released at once. Latency counts from the release. Returns the round and the id of
    the appointment the 201 answer created."""
    out = RaceRound(slot=slot)
    n = len(tokens)
    body = json.dumps(
        {
            "doctor_id": str(doctor.id),
            "start": slot.astimezone(CAIRO).isoformat(),
            "mode": "in_person",
            "clinic_id": str(clinic.id),
        }
    ).encode()
    winner: str | None = None
    connector = aiohttp.TCPConnector(limit=n, limit_per_host=n, force_close=False)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        cookie_jar=aiohttp.DummyCookieJar(),
    ) as session:
        gate = asyncio.Event()
        opened = asyncio.Event()
        ready = 0
        released = hb.clock()

        async def warm() -> None:
            async with session.get(base + INFO) as response:
                await response.read()

        async def one(token: str) -> None:
            nonlocal ready, winner
            ready += 1
            if ready == n:
                opened.set()
            await gate.wait()
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            try:
                async with session.post(base + BOOK, data=body, headers=headers) as response:
                    raw = await response.read()
                    out.latencies.append((hb.clock() - released) * 1000)
                    code = ""
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        parsed = json.loads(raw)
                        code = parsed["error"]["code"] if response.status != 201 else ""
                        if response.status == 201:
                            winner = parsed["id"]
                    name = f"{response.status} {code}".strip()
            except TimeoutError:
                name, raw = "timeout", b""
            except aiohttp.ClientError as exc:
                name, raw = type(exc).__name__, b""
            out.statuses[name] += 1
            if name not in ("201", "409 booking.slot_taken") and len(out.examples) < 3:
                out.examples.append(f"[{name}] POST {BOOK} {body.decode()} -> {raw[:400]!r}")

        # Open n connections: n concurrent requests, none answered before all are sent.
        await asyncio.gather(*(warm() for _ in range(n)))
        out.connections = sum(len(v) for v in getattr(connector, "_conns", {}).values())
        tasks = [asyncio.ensure_future(one(t)) for t in tokens]
        await asyncio.wait_for(opened.wait(), timeout=10)
        await asyncio.sleep(0.1)
        released = hb.clock()
        gate.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=timeout + 10)
        out.all_done_ms = (hb.clock() - released) * 1000
    return out, winner


# --- Probes ------------------------------------------------------------------------------


def probes(base: str, password_hash: str) -> list[str]:
    """Two single-request checks; returns findings (empty when all is as documented)."""
    from accounts.models import Role
    from bookings.selectors import doctor_slots

    findings: list[str] = []
    [(doctor, clinic)] = seed_simple_doctors(
        1, "probedoctor", password_hash, video_buffer_probe=True
    )
    [(other, other_clinic)] = seed_simple_doctors(1, "probeother", password_hash)
    patients = make_users(3, Role.PATIENT, "probepatient", password_hash)
    a, b, c = ({"Authorization": f"Bearer {t}"} for t in mint_tokens(patients))
    day = cairo_midnight(3)
    video = [
        s.start
        for s in doctor_slots(doctor=doctor, start=day, end=day + dt.timedelta(days=1))
        if s.mode == "video"
    ]
    first, second = video[0], video[1]
    assert second - first == dt.timedelta(minutes=15)

    def book(
        headers: dict[str, str], doc: Any, start: dt.datetime, mode: str, cl: Any
    ) -> tuple[str, int, Any]:
        body = {
            "doctor_id": str(doc.id),
            "start": start.astimezone(CAIRO).isoformat(),
            "mode": mode,
        }
        if cl is not None:
            body["clinic_id"] = str(cl.id)
        key = {"Idempotency-Key": uuid.uuid4().hex}  # a new one per request
        status, answer = _http("POST", base + BOOK, body, {**headers, **key})
        return f"POST {BOOK} {json.dumps(body)}", status, answer

    def brief(answer: Any) -> str:
        if isinstance(answer, dict) and "error" in answer:
            return json.dumps({"error": {k: answer["error"].get(k) for k in ("code", "message")}})
        if isinstance(answer, dict):
            return json.dumps({k: answer.get(k) for k in ("id", "status", "start", "end", "mode")})
        return str(answer)[:300]

    # 1. A video slot (rule without buffer) right after a booked video slot, while another
    #    rule of the same doctor has a 5-minute buffer.
    req1, st1, ans1 = book(a, doctor, first, "video", None)
    slots_url = (
        f"/api/v1/doctors/{doctor.id}/slots?from={day.date()}&to={day.date()}&tz=Africa/Cairo"
    )
    st_s, ans_s = _http("GET", base + slots_url)
    offered = [item["start"] for item in (ans_s or {}).get("items", []) if item["mode"] == "video"][
        :3
    ]
    req2, st2, ans2 = book(b, doctor, second, "video", None)
    if st1 == 201 and st2 != 201:
        findings.append(
            "**A slot of a rule without buffer is lost after every booking when another rule of "
            "the same doctor has a buffer.** Doctor: in person 08:00-12:00 (15 min + 5 min "
            "buffer) and video 15:00-17:00 (15 min, no buffer), Africa/Cairo. "
            f"`{req1}` -> {st1} {brief(ans1)}; then `GET {slots_url}` -> {st_s}, first video "
            f"slots offered: {offered} (the {second.astimezone(CAIRO):%H:%M} slot is gone); "
            f"`{req2}` by another patient -> **{st2}** {brief(ans2)}. Nobody booked "
            f"{second.astimezone(CAIRO):%H:%M}: `selectors.doctor_slots` extends every "
            "appointment by the LARGEST buffer of all the doctor's hours (`margin = "
            "max(h.buffer_minutes for h in hours)`), while `bookings/slots.py` documents "
            '"an active appointment (plus the rule\'s buffer after it)".'
        )

    # 2. A patient who already has an appointment at that time books another doctor's free
    #    slot at the same time: refused by the patient's exclusion constraint.
    req3, st3, ans3 = book(a, other, first, "in_person", other_clinic)
    req4, st4, ans4 = book(c, other, first, "in_person", other_clinic)
    code3 = ans3.get("error", {}).get("code") if isinstance(ans3, dict) else None
    if st3 == 409 and code3 == "booking.slot_taken":
        findings.append(
            "**A busy patient is told the doctor's slot was taken.** The patient of the first "
            f"probe (video at {first.astimezone(CAIRO):%H:%M}) books another doctor at the "
            f"same time: `{req3}` -> **{st3}** {brief(ans3)}, yet the slot is free: the same "
            f"request by another patient -> {st4} {brief(ans4)}. The IntegrityError of the "
            "patient's exclusion constraint (`appt_patient_no_overlap`) is turned into "
            "`SlotTaken` like the doctor's (`services.appointment_book`); the client cannot "
            'tell "you already have an appointment then" from "someone took it".'
        )
    elif st3 == 201:
        findings.append(
            "**A patient got two overlapping appointments.** The patient of the first probe "
            f"(video at {first.astimezone(CAIRO):%H:%M}) booked another doctor at the same "
            f"time: `{req3}` -> **{st3}** {brief(ans3)}."
        )
    else:
        findings.append(
            "(as expected or other) a patient busy at that time booking another doctor: "
            f"`{req3}` -> {st3} {brief(ans3)}; the same by another patient -> {st4} "
            f"{brief(ans4)}"
        )
    return findings


# --- Report ------------------------------------------------------------------------------


def _row(name: str, values: Sequence[float], extra: str = "") -> str:
    mean = statistics.fmean(values) if values else float("nan")
    return (
        f"| {name} | {len(values)} | {_f(pct(values, 50), 2)} | {_f(pct(values, 95), 2)} | "
        f"{_f(pct(values, 99), 2)} | {_f(mean, 2)} | {_f(max(values) if values else float('nan'), 2)}"
        f"{extra} |"
    )


def _status_mix(outcome: Outcome) -> str:
    return ", ".join(f"{name}: {n}" for name, n in outcome.statuses.most_common()) or "none"


def _run_row(
    name: str, run: hb.Run, outcome: Outcome, verdict: str | None = None, quiet_cores: float = 0.3
) -> str:
    per_request = run.server_ms_per_request
    db_per = run.deps_cpu / run.achieved * 1000 if run.achieved else float("nan")
    tail = f" | {verdict}" if verdict is not None else ""
    flag = " (!)" if run.other_cpu > quiet_cores else ""
    return (
        f"| {name} | {run.rate:.0f} | {run.achieved:.0f} | {_f(run.percentile(50))} | "
        f"{_f(run.percentile(95))} | {_f(run.percentile(99))} | {_f(run.percentile(100))} | "
        f"{_status_mix(outcome)}{', unsent: ' + str(run.unsent) if run.unsent else ''} | "
        f"{five_xx(outcome)} | {outcome.created} | {run.server_cpu:.0%} | {_f(per_request)} | "
        f"{run.deps_cpu:.0%} | {_f(db_per)} | {run.client_cpu:.0%} | {run.other_cpu:.0%}{flag}"
        f"{tail} |"
    )


RUN_HEADER = (
    "| run | rate (rps) | achieved | p50 (ms) | p95 (ms) | p99 (ms) | max (ms) | status mix "
    "| 5xx | created in DB | server CPU | server CPU per booking (ms) | db+redis CPU "
    "| db+redis CPU per booking (ms) | client CPU | other CPU |"
)
RUN_RULE = "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"


def _statement_kind(sql: str) -> str:
    """``INSERT bookings_appointment``, ``SAVEPOINT``...: the verb and the first table."""
    words = sql.split()
    verb = words[0].upper() if words else "?"
    if verb in ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"):
        return verb
    found = re.search(r'(?:FROM|INTO|UPDATE)\s+"([^"]+)"', sql)
    return f"{verb} {found.group(1) if found else '?'}"


def booking_profile_text(bp: BookingProfile | None) -> list[str]:
    if bp is None:
        return []
    kinds = Counter(_statement_kind(q) for q in bp.queries)
    return [
        f"Where a booking's time goes, in process (Django test client: the same middleware, "
        f"view, service and queries, without ASGI/Uvicorn; {bp.n} bookings on distinct slots, "
        f"no other load): p50 {_f(pct(bp.wall, 50), 2)} ms, p95 {_f(pct(bp.wall, 95), 2)} ms, "
        f"mean {_f(statistics.fmean(bp.wall), 2)} ms per booking; **{len(bp.queries)} SQL "
        "statements per booking** ("
        + "; ".join(f"{k} x{v}" if v > 1 else k for k, v in kinds.most_common())
        + f"). cProfile of {bp.n} more ({_f(bp.profile_ms, 1)} ms each under the profiler), per "
        "booking:",
        "",
        "| part | calls per booking | cumulative (ms) | own (ms) |",
        "|---|---:|---:|---:|",
        *[f"| {label} | {c:.0f} | {_f(ct, 2)} | {_f(tt, 2)} |" for label, c, ct, tt in bp.rows],
        "",
        "| top functions by own time | calls per booking | own (ms) | cumulative (ms) |",
        "|---|---:|---:|---:|",
        *[f"| {name} | {c:.0f} | {_f(tt, 2)} | {_f(ct, 2)} |" for name, c, tt, ct in bp.top],
        "",
    ]


@dataclass
class Results:
    busy: BusyDoctor
    slots: SlotResult
    fixed: tuple[hb.Run, Outcome] | None = None
    compare_key: tuple[hb.Run, Outcome] | None = None
    compare_no_key: tuple[hb.Run, Outcome] | None = None
    booking_profile: BookingProfile | None = None
    best: float | None = None
    steps: list[tuple[hb.Run, Outcome]] = field(default_factory=list)
    races: list[RaceRound] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    server_log: str = ""
    seed_s: float = 0.0
    load_doctors: int = 0
    load_patients: int = 0
    logins: int = 0
    planned: int = 0


def report(
    args: argparse.Namespace,
    command: str,
    started: dt.datetime,
    took: float,
    info: dict[str, str],
    revision: str,
    res: Results,
) -> str:
    s = res.slots
    b = res.busy
    p95 = pct(s.runs, 95)
    db_part = [t - f for t, f in zip(s.runs, s.free_slots, strict=True)]
    out = [
        "## Booking (scheduling and booking)",
        "",
        f"- command: `{command}`",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; the whole run took {took:.0f} s "
        f"(seeding {res.seed_s:.0f} s)",
        f"- machine: {len(os.sched_getaffinity(0))} cores (nproc), {platform.machine()}, "
        f"{platform.system()} {platform.release()}; the load generator, the server, PostgreSQL "
        f"and Redis share them; CPU speed: {hb.cpu_speed()}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        f"- application: {revision}",
        "- server: one Uvicorn process (`.venv/bin/uvicorn --host 127.0.0.1 --port P "
        "--no-access-log --lifespan off telemed.asgi:application`), DJANGO_ENV=development "
        "DEBUG=false, PostgreSQL `telemed_bench_booking` through the psycopg pool (default "
        "max 20), Redis (own key prefix), TASK_WORKER_IN_PROCESS=false, LOG_LEVEL=WARNING",
        "- CPU columns: share of one core used during the run by the server process, by "
        "PostgreSQL + Redis (all their processes: other people's test databases included), "
        "by this load generator and by everything else on the machine; (!) = other work used "
        f"more than {args.quiet_cores:g} cores during the run even after {args.retries} "
        "repetition(s)",
        "",
        "### 1. Slot computation: `bookings.selectors.doctor_slots` over 3 months, in process",
        "",
        f"Doctor: {b.rules} weekly rules (every weekday: in person 08:00-14:00 local at a "
        "clinic in Africa/Cairo Sat-Wed or Asia/Riyadh Thu-Fri, 15 min + 5 min buffer; video "
        "15:00-20:00 Africa/Cairo, 15 min), "
        f"{b.extra_hours} extra evenings (video 20:00-22:00), {b.time_off} time-off periods "
        f"(a 5-day leave and afternoons), {b.active} active and {b.cancelled} cancelled "
        f"appointments in the range; policy: 60 min notice, 100-day window. Range: "
        f"{b.range_start:%Y-%m-%d} to {b.range_end:%Y-%m-%d} (Africa/Cairo midnights, "
        f"{SLOT_RANGE_DAYS} days). Per call: {len(s.queries)} queries, {s.hours} sources of "
        f"hours, {s.candidates} candidate slots generated, {s.busy} busy intervals, "
        f"**{s.slots} free slots** returned. Machine busy {s.busy_cores:.2f} cores (all "
        "processes) during these runs.",
        "",
        "| measured | calls | p50 (ms) | p95 (ms) | p99 (ms) | mean (ms) | max (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|",
        _row("**`doctor_slots`, 3 months (whole call)**", s.runs),
        _row("of which `free_slots` (pure Python)", s.free_slots),
        _row(
            "of which the rest: the schedule (policy + hours) from the cache, one query for "
            "time off + appointments, ORM included",
            db_part,
        ),
        _row("`free_slots` on the same input without busy intervals", s.no_busy),
        _row(
            "`doctor_slots` with the schedule read fresh (2 more queries: as a booking does)",
            s.fresh,
        ),
        "",
        f"**Target p95 <= {TARGET_SLOTS_P95_MS:g} ms: "
        f"{'met' if p95 <= TARGET_SLOTS_P95_MS else 'MISSED'}** (p95 {p95:.1f} ms).",
        "",
    ]
    if s.profile_rows:
        out += [
            f"cProfile of {s.profile_runs} calls ({s.profile_ms:.1f} ms per call under the "
            "profiler, which inflates pure-Python work more than waiting on PostgreSQL); per "
            "call:",
            "",
            "| function | calls per call | cumulative (ms) | own time (ms) |",
            "|---|---:|---:|---:|",
            *[
                f"| {label} | {calls:.0f} | {_f(ct, 2)} | {_f(tt, 2)} |"
                for label, calls, ct, tt in s.profile_rows
            ],
            "",
            "Top functions by own time (per call):",
            "",
            "| function | calls per call | own (ms) | cumulative (ms) |",
            "|---|---:|---:|---:|",
            *[
                f"| {name} | {calls:.0f} | {_f(tt, 2)} | {_f(ct, 2)} |"
                for name, calls, tt, ct in s.profile_top
            ],
            "",
        ]
    out += [
        "Through HTTP on the server of part 2 (`GET /api/v1/doctors/{id}/slots?from=&to=&tz="
        "Africa/Cairo`, one request at a time on one keep-alive connection, same doctor; "
        f"errors: {dict(s.http_errors) or 0}):",
        "",
        "| range | requests | p50 (ms) | p95 (ms) | p99 (ms) | mean (ms) | max (ms) | slots per answer (median) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        _row(
            "1 week",
            s.http_week,
            f" | {statistics.median(s.http_week_items) if s.http_week_items else 0:.0f}",
        ),
        _row(
            "62 days (the API's maximum)",
            s.http_long,
            f" | {statistics.median(s.http_long_items) if s.http_long_items else 0:.0f}",
        ),
        "",
    ]
    out += [
        "### 2. Booking creation on distinct free slots (open loop, one Uvicorn process)",
        "",
        f"{res.load_doctors} doctors (Cairo clinic, in person every day 08:00-20:00, 15-min "
        f"slots, default policy), {res.load_patients} patients ({res.logins} logged in through "
        f"`POST {LOGIN}`, the others' sessions minted in process, every token checked with "
        f"`GET {WHOAMI}`), {res.planned} distinct (doctor, slot) pairs planned in random order "
        "over the next 8 weeks, each with a patient free at that time. "
        f"`POST {BOOK}` with `{{doctor_id, start (+02:00 offset), mode, clinic_id}}`, "
        f"{args.connections} keep-alive connections, latency from the intended send time, "
        f"client timeout {args.timeout:g} s, drain {args.drain:g} s.",
        "",
        RUN_HEADER,
        RUN_RULE,
    ]
    if res.fixed:
        out.append(
            _run_row(
                f"**target rate**, Idempotency-Key, {args.duration:g} s",
                *res.fixed,
                quiet_cores=args.quiet_cores,
            )
        )
    if res.compare_key:
        out.append(
            _run_row(
                f"Idempotency-Key, {args.duration:g} s",
                *res.compare_key,
                quiet_cores=args.quiet_cores,
            )
        )
    if res.compare_no_key:
        out.append(
            _run_row(
                f"without Idempotency-Key, {args.duration:g} s",
                *res.compare_no_key,
                quiet_cores=args.quiet_cores,
            )
        )
    if res.fixed:
        run, outcome = res.fixed
        met = run.percentile(95) <= TARGET_BOOK_P95_MS and not run.error_count
        out += [
            "",
            f"**Target p95 <= {TARGET_BOOK_P95_MS:g} ms at {args.rate:g}/s with zero 5xx: "
            f"{'met' if met else 'MISSED'}** (p95 {run.percentile(95):.1f} ms, 5xx "
            f"{five_xx(outcome)}, {run.error_count} non-201 or unanswered).",
        ]
    best = "none" if res.best is None else f"{res.best:.0f}"
    out += [
        "",
        f"Maximum sustainable rate (steps of {args.step_duration:g} s from {args.step_start:g}/s, "
        f"x1.5 then bisection; sustainable = every request 201, >= 95% of the rate achieved, "
        f"p99 <= {args.slo_p99_ms:g} ms): **{best} bookings/s**",
        "",
        RUN_HEADER + " sustainable |",
        RUN_RULE + "---|",
        *[
            _run_row(
                "step",
                r,
                o,
                "yes" if sustainable(r, args.slo_p99_ms) else "no",
                quiet_cores=args.quiet_cores,
            )
            for r, o in sorted(res.steps, key=lambda item: item[0].rate or 0)
        ],
        "",
        *booking_profile_text(res.booking_profile),
        f"### 3. The same-slot race: {args.race} patients, same doctor and slot, released together",
        "",
        "| round | slot (Cairo) | outcomes | 5xx | p50 (ms) | p95 (ms) | p99 (ms) | max = all "
        "answered (ms) | connections open | active appointments in DB | DB row = the 201 |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for i, r in enumerate(res.races, 1):
        fx = sum(n for name, n in r.statuses.items() if name[:1] == "5")
        mix = ", ".join(f"{name}: {n}" for name, n in r.statuses.most_common())
        out.append(
            f"| {i} | {r.slot.astimezone(CAIRO):%Y-%m-%d %H:%M} | {mix} | {fx} | "
            f"{_f(pct(r.latencies, 50))} | {_f(pct(r.latencies, 95))} | "
            f"{_f(pct(r.latencies, 99))} | {_f(r.all_done_ms)} | {r.connections} | "
            f"{r.active_in_db} | {'yes' if r.winner_matches else 'NO'} |"
        )
    ok_races = all(
        r.statuses.get("201") == 1
        and r.statuses.get("409 booking.slot_taken") == args.race - 1
        and r.active_in_db == 1
        and r.winner_matches
        for r in res.races
    )
    out += [
        "",
        f"**Exactly one 201, {args.race - 1} x 409 `booking.slot_taken`, no 5xx, one row: "
        f"{'yes, every round' if ok_races else 'NO'}.**",
    ]
    examples = [e for _, o in [*([res.fixed] if res.fixed else []), *res.steps] for e in o.examples]
    examples += [e for r in res.races for e in r.examples]
    if examples:
        out += ["", "Examples of answers other than 201 / expected 409 (tokens elided):", ""]
        out += [f"- `{e}`" for e in examples[:8]]
    if res.server_log.strip():
        out += ["", "Server log (tail, WARNING and above):", "", "```text", res.server_log, "```"]
    out += ["", "### Probes (single requests)", ""]
    out += [f"- {f}" for f in res.findings] or ["- nothing unexpected"]
    return "\n".join(out)


# --- Main --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Scheduling and booking: slot computation, booking under open-loop load, "
        "the same-slot race.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--appointments", type=int, default=300, help="active, part 1 doctor")
    parser.add_argument("--slot-runs", type=int, default=200)
    parser.add_argument("--profile-runs", type=int, default=20, help="0: no cProfile")
    parser.add_argument("--http-week", type=int, default=100, help="GET /slots, 1-week ranges")
    parser.add_argument("--http-long", type=int, default=20, help="GET /slots, 62-day ranges")
    parser.add_argument("--doctors", type=int, default=100, help="part 2 doctors")
    parser.add_argument("--patients", type=int, default=100, help="part 2, >= --doctors")
    parser.add_argument("--logins", type=int, default=5, help="patients logged in over HTTP")
    parser.add_argument("--rate", type=float, default=150.0, help="fixed open-loop rate (rps)")
    parser.add_argument("--duration", type=float, default=20.0, help="fixed-rate run, seconds")
    parser.add_argument(
        "--compare-rate",
        type=float,
        default=30.0,
        help="rate of the runs with and without Idempotency-Key (below saturation); 0: none",
    )
    parser.add_argument("--profile-bookings", type=int, default=200, help="in process; 0: none")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--step-start", type=float, default=30.0)
    parser.add_argument("--step-duration", type=float, default=10.0)
    parser.add_argument("--max-steps", type=int, default=10)
    parser.add_argument("--step-budget", type=float, default=420.0, help="seconds")
    parser.add_argument("--slo-p99-ms", type=float, default=200.0)
    parser.add_argument("--race", type=int, default=200, help="concurrent requests per round")
    parser.add_argument("--race-rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=10.0, help="per request, seconds")
    parser.add_argument("--drain", type=float, default=10.0)
    parser.add_argument("--quiet-wait", type=float, default=15.0)
    parser.add_argument("--quiet-cores", type=float, default=0.3)
    parser.add_argument("--retries", type=int, default=1)
    args = parser.parse_args(argv)
    if not (0 < args.rate <= 2000 and 0 < args.duration <= 120 and 0 < args.step_duration <= 60):
        parser.error("rate 0-2000, duration 0-120 s, step duration 0-60 s")
    if not (1 <= args.slot_runs <= 5000 and 0 <= args.profile_runs <= 500):
        parser.error("slot runs 1-5000, profile runs 0-500")
    if not (1 <= args.doctors <= 2000 and args.doctors <= args.patients <= 5000):
        parser.error("doctors 1-2000, patients between doctors and 5000")
    if not (0 <= args.logins <= min(20, args.patients) and 2 <= args.race <= 1000):
        parser.error("logins 0-20 (allauth: 30/min per IP), race 2-1000")
    if not (1 <= args.max_steps <= 30 and 1 <= args.race_rounds <= 10):
        parser.error("max steps 1-30, race rounds 1-10")
    if not (1 <= args.connections <= 512 and 0 <= args.retries <= 5):
        parser.error("connections 1-512, retries 0-5")
    return args


def revision_text() -> str:
    def git(*a: str) -> str:
        return subprocess.run(
            ["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=30, check=False
        ).stdout.rstrip()

    commit = git("rev-parse", "--short", "HEAD")
    dirty = git("status", "--porcelain", "--", "bookings", "core", "accounts", "doctors", "telemed")
    state = (
        "clean"
        if not dirty
        else "uncommitted edits: " + ", ".join(ln[3:] for ln in dirty.splitlines()[:8])
    )
    return f"work tree at commit `{commit}` (bookings, core, accounts, doctors, telemed: {state})"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    command = shlex.join([".venv/bin/python", "bench/booking.py", *sys.argv[1:]])
    started = dt.datetime.now(dt.UTC)
    t_start = time.monotonic()
    rng = random.Random(args.seed)  # noqa: S311 - test data
    sys.path.insert(0, str(ROOT))

    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="telemed-book-")))
        env = bench_env(args.redis_url, workdir / "var")
        os.environ.update(env)
        import django

        django.setup()
        from django.contrib.auth.hashers import make_password

        log(f"creating database {DB_NAME} (dropped first if there)")
        create_database()
        stack.callback(drop_database)
        stack.callback(lambda: log(f"deleted {delete_redis_keys(args.redis_url)} Redis keys"))
        log("migrating")
        hb.migrate(env, ROOT)

        t_seed = time.monotonic()
        log("seeding")
        password_hash = make_password(PASSWORD)
        busy = seed_busy_doctor(password_hash, rng, args.appointments)
        from accounts.models import Role
        from bookings.models import ACTIVE, Appointment

        load_doctors = seed_simple_doctors(args.doctors, "loaddoctor", password_hash)
        patients = make_users(args.patients, Role.PATIENT, "loadpatient", password_hash)
        [(race_doctor, race_clinic)] = seed_simple_doctors(1, "racedoctor", password_hash)
        race_patients = make_users(args.race, Role.PATIENT, "racepatient", password_hash)
        plan = Plan(
            load_doctors,
            args.patients,
            start=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
            end=dt.datetime.now(dt.UTC) + dt.timedelta(days=57),
            seed=args.seed,
        )
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        seed_s = time.monotonic() - t_seed
        log(f"seeded in {seed_s:.0f} s; {len(plan.pairs)} (doctor, slot) pairs planned")

        log(f"part 1: doctor_slots x {args.slot_runs}, 3 months, in process")
        slot_result = slot_computation(busy, args.slot_runs, args.profile_runs, budget_s=180)
        log(
            f"  p50 {pct(slot_result.runs, 50):.1f} p95 {pct(slot_result.runs, 95):.1f} "
            f"p99 {pct(slot_result.runs, 99):.1f} ms, {slot_result.slots} slots"
        )
        res = Results(busy=busy, slots=slot_result, seed_s=seed_s)
        res.load_doctors, res.load_patients, res.planned = (
            args.doctors,
            args.patients,
            len(plan.pairs),
        )
        if args.profile_bookings:
            log(f"part 2 in process: {args.profile_bookings} bookings timed, as many profiled")
            res.booking_profile = profile_bookings(plan, patients, args.profile_bookings)
        from django.db import connections

        connections.close_all()

        info = {
            "python": platform.python_version(),
            **{
                name: importlib.metadata.version(name)
                for name in ("django", "django-ninja", "django-allauth", "uvicorn", "uvloop")
            },
            "httptools": importlib.metadata.version("httptools"),
            "psycopg": importlib.metadata.version("psycopg"),
            "aiohttp (client)": aiohttp.__version__,
            "postgresql": "?",
            "redis": hb.redis_version(args.redis_url),
        }
        with connection.cursor() as cursor:
            cursor.execute("SHOW server_version")
            row = cursor.fetchone()
            info["postgresql"] = str(row[0]) if row else "?"

        server = hb.Server("uvicorn", env, workdir / "uvicorn.log", ROOT)
        log(f"uvicorn on {server.base}")
        loop = hb._new_loop()
        session: aiohttp.ClientSession | None = None
        try:
            server.wait_healthy()
            server.check(INFO)
            log("part 1 over HTTP: GET /slots")
            loop.run_until_complete(
                http_slots(server.base, busy, slot_result, args.http_week, args.http_long)
            )

            log(f"logging in {args.logins} patients over HTTP, minting the other sessions")
            login_tokens = login_over_http(server.base, patients[: args.logins])
            check_tokens(server.base, login_tokens, patients[: args.logins])
            check_tokens(server.base, mint_tokens(patients), patients)
            check_tokens(server.base, mint_tokens(race_patients), race_patients)
            res.logins = args.logins

            async def make_session() -> aiohttp.ClientSession:
                return hb._session(args.connections, args.timeout)

            session = loop.run_until_complete(make_session())
            load = Load(
                server=server,
                loop=loop,
                session=session,
                plan=plan,
                patients=patients,
                doctor_ids=[d.id for d, _ in load_doctors],
                login_tokens=login_tokens,
            )
            log("part 2: warm-up (5 s at 20/s)")
            warm_args = argparse.Namespace(**{**vars(args), "retries": 0, "quiet_wait": 0.0})
            measure(load, warm_args, 20.0, 5.0, "warmup", keys=True)
            log(f"part 2: {args.rate:g}/s for {args.duration:g} s with Idempotency-Key")
            res.fixed = measure(load, args, args.rate, args.duration, "fixed", keys=True)
            log(f"  fixed {line(res.fixed[0])} {dict(res.fixed[1].statuses)}")
            if args.compare_rate:
                for keys in (True, False):
                    log(f"part 2: {args.compare_rate:g}/s for {args.duration:g} s, key {keys}")
                    pair = measure(load, args, args.compare_rate, args.duration, "fixed", keys)
                    log(f"  fixed {line(pair[0])} {dict(pair[1].statuses)}")
                    if keys:
                        res.compare_key = pair
                    else:
                        res.compare_no_key = pair
            log("part 2: maximum sustainable rate")
            res.best, res.steps = max_rate(load, args)

            log(f"part 3: race, {args.race} concurrent requests x {args.race_rounds}")
            from bookings.selectors import doctor_slots

            race_slots = [
                s.start
                for s in doctor_slots(
                    doctor=race_doctor, start=cairo_midnight(10), end=cairo_midnight(11)
                )
            ]
            for r in range(args.race_rounds):  # bounded
                loop.run_until_complete(hb.wait_until_quiet(args.quiet_wait, args.quiet_cores))
                tokens = mint_tokens(race_patients)
                slot = race_slots[(r * 7) % len(race_slots)]
                rnd, winner = loop.run_until_complete(
                    race_round(
                        server.base, tokens, race_doctor, race_clinic, slot, args.timeout * 3
                    )
                )
                active = Appointment.objects.filter(
                    doctor=race_doctor, start=slot, status__in=ACTIVE
                )
                rnd.active_in_db = active.count()
                rnd.winner_matches = winner is not None and [str(a.id) for a in active] == [winner]
                log(
                    f"  round {r + 1}: {dict(rnd.statuses)} all answered in {rnd.all_done_ms:.0f} ms"
                )
                res.races.append(rnd)

            log("probes")
            res.findings = probes(server.base, password_hash)
            for finding in res.findings:
                log(f"  {finding}")
        finally:
            if session is not None:
                loop.run_until_complete(session.close())
            loop.close()
            code = server.stop()
            log(f"uvicorn stopped, exit code {code}")
            lines = server.output(20000).splitlines()
            res.server_log = "\n".join([ln for ln in lines if not ln.startswith("INFO:")][-40:])
        took = time.monotonic() - t_start
        text = report(args, command, started, took, info, revision_text(), res)

    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
