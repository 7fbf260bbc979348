"""A small demo data set for ``make run``: one account per role, printed with its login.

Idempotent: running it again keeps existing accounts. Grows with each feature so a newcomer
can try everything at once. Refuses to run in production.
"""

from __future__ import annotations

from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.models import PatientProfile, Role, User

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
    help = "Create the demo accounts (development only) and print their logins."

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION:
            raise CommandError("seed_demo refuses to run with DJANGO_ENV=production")
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
        self.stdout.write("Demo accounts (development only):")
        for spec in DEMO_ACCOUNTS:
            self.stdout.write(
                f"  {spec['role']:<8} {spec['email']:<30} password: {spec['password']}"
            )
