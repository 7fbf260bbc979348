"""A demo data set for ``make run``: one account per role, printed with its login, and a
directory of verified doctors (``--doctors N``, default 20; see :mod:`doctors.demo`).

Idempotent-ish: running it again keeps the existing accounts and doctors. The demo accounts
are created once; the demo doctor account gets a verified profile with a clinic in Cairo
(what is missing of it is added). ``--doctors N`` makes the generated doctors ``0 .. N-1``
exist: a second run with the same N adds nothing, a run with a larger N adds the difference
(the same doctors a single run would have made, for the same ``--seed``), a smaller N removes
nothing. Fast enough for benchmarks (``--doctors 100000``: bulk inserts in batches). Grows
with each feature so a newcomer can try everything at once. Refuses to run in production.
"""

from __future__ import annotations

import time
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import PatientProfile, Role, User
from doctors import demo, services

DEMO_ACCOUNTS = [
    {
        "email": "admin@demo.telemed.local",
        "password": "demo-admin-2026",
        "role": Role.ADMIN,
        "first_name": "Amina",
        "last_name": "Admin",
    },
    {
        "email": "doctor@demo.telemed.local",
        "password": "demo-doctor-2026",
        "role": Role.DOCTOR,
        "first_name": "Omar",
        "last_name": "Haddad",
        "language": "ar",
        "time_zone": "Africa/Cairo",
    },
    {
        "email": "patient@demo.telemed.local",
        "password": "demo-patient-2026",
        "role": Role.PATIENT,
        "first_name": "Sara",
        "last_name": "Nasser",
        "time_zone": "Africa/Cairo",
    },
]


class Command(BaseCommand):
    help = (
        "Create the demo accounts and a directory of verified doctors (development only) "
        "and print the logins."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--doctors",
            type=int,
            default=20,
            help="make the generated doctors 0..N-1 exist (existing ones are kept; default 20)",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=demo.DEFAULT_SEED,
            help="the same seed gives the same doctors",
        )
        parser.add_argument("--batch-size", type=int, default=demo.DEFAULT_BATCH)

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("seed_demo refuses to run with DJANGO_ENV=production")
        doctors, seed, batch = options["doctors"], options["seed"], options["batch_size"]
        if doctors < 0 or not 0 <= seed < 2**24 or batch < 1:
            raise CommandError(
                "--doctors and --seed must be >= 0 (seed < 2**24), --batch-size >= 1"
            )
        started = time.perf_counter()
        for spec in DEMO_ACCOUNTS:
            data = dict(spec)
            password = data.pop("password")
            if User.objects.filter(email=data["email"]).exists():
                continue
            extra = {k: v for k, v in data.items() if k != "email"}
            user = User.objects.create_user(data["email"], password, **extra)
            if user.role == Role.ADMIN:
                user.is_superuser = True
                user.save(update_fields=["is_superuser", "is_staff"])
            if user.role == Role.PATIENT:
                PatientProfile.objects.create(user=user)
            # Demo addresses count as verified, so the accounts can log in at once.
            EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
        doctor = User.objects.get(email="doctor@demo.telemed.local")
        demo.seed_demo_doctor(doctor)

        self.stdout.write(f"Directory: {doctors} generated doctors wanted (seed {seed})")

        def progress(report: demo.SeedReport) -> None:
            todo = report.wanted - report.existing
            self.stdout.write(
                f"  {report.created}/{todo} doctors, {report.clinics} clinics, "
                f"{report.seconds:.1f} s"
            )
            self.stdout.flush()

        report = demo.seed_directory(
            doctors=doctors, seed=seed, batch_size=batch, progress=progress
        )
        hours = _weekly_hours(demo_doctor_user=doctor, first=20)
        services.directory_changed()  # cached search pages must show the new doctors
        self.stdout.write(
            f"Directory: {report.created} doctors and {report.clinics} clinics created, "
            f"{report.existing} already there; seeding took {time.perf_counter() - started:.1f} s"
        )
        self.stdout.write(f"Weekly hours given to {hours} doctors (book them right away)")
        self.stdout.write("Demo accounts (development only):")
        for spec in DEMO_ACCOUNTS:
            self.stdout.write(
                f"  {spec['role']:<8} {spec['email']:<30} password: {spec['password']}"
            )


def _weekly_hours(*, demo_doctor_user: User, first: int) -> int:
    """Opening hours for the demo doctor and the first generated doctors, so that a newcomer
    can book right after ``make run``: every day 09:00-13:00 at the clinic and 17:00-20:00 by
    video, in the modes each profile offers, 30-minute slots. Doctors that already have hours
    keep them."""
    from datetime import time as wall

    from bookings.models import AvailabilityRule, BookingPolicy
    from doctors.models import DoctorProfile

    profiles = [DoctorProfile.objects.get(user=demo_doctor_user)]
    profiles += list(
        DoctorProfile.objects.filter(
            user__email__endswith="@directory.demo.telemed.local"
        ).order_by("user__email")[:first]
    )
    given = 0
    for profile in profiles:
        if AvailabilityRule.objects.filter(doctor=profile).exists():
            continue
        clinic = profile.clinics.first()
        rules = []
        for weekday in range(7):
            if clinic is not None and profile.offers_in_person:
                rules.append(
                    AvailabilityRule(
                        doctor=profile,
                        clinic=clinic,
                        mode="in_person",
                        weekday=weekday,
                        start=wall(9),
                        end=wall(13),
                        slot_minutes=30,
                    )
                )
            if not profile.offers_video:
                continue
            rules.append(
                AvailabilityRule(
                    doctor=profile,
                    clinic=None,
                    mode="video",
                    weekday=weekday,
                    start=wall(17),
                    end=wall(20),
                    slot_minutes=30,
                )
            )
        AvailabilityRule.objects.bulk_create(rules)
        BookingPolicy.objects.get_or_create(doctor=profile)
        given += 1
    return given
