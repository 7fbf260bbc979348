from __future__ import annotations

import uuid
import zoneinfo
from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(_("Unknown time zone."), code="invalid_time_zone")


class Role(models.TextChoices):
    PATIENT = "patient", _("Patient")
    DOCTOR = "doctor", _("Doctor")
    ADMIN = "admin", _("Admin")
    HELPER = "helper", _("Helper")


class Language(models.TextChoices):
    EN = "en", _("English")
    AR = "ar", _("Arabic")


STAFF_ROLES = frozenset({Role.ADMIN, Role.HELPER})


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create(self, email: str | None, password: str | None, **extra: Any) -> User:
        user = self.model(email=self.normalize_email(email).lower() if email else None, **extra)
        user.set_password(password) if password else user.set_unusable_password()
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_user(
        self, email: str | None = None, password: str | None = None, **extra: Any
    ) -> User:
        extra.setdefault("role", Role.PATIENT)
        return self._create(email, password, **extra)

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.update(role=Role.ADMIN, is_superuser=True)
        return self._create(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in: patient, doctor, admin or helper staff.

    E-mail is the login; phone-only accounts (SMS sign-up) have no e-mail. ``is_staff``
    follows the role: admins and helpers are staff, and what a helper may do comes from its
    groups' permissions.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(_("e-mail address"), unique=True, null=True, blank=True)
    phone = models.CharField(_("phone number"), max_length=20, unique=True, null=True, blank=True)
    first_name = models.CharField(_("first name"), max_length=150, blank=True)
    last_name = models.CharField(_("last name"), max_length=150, blank=True)
    role = models.CharField(_("role"), max_length=16, choices=Role.choices, default=Role.PATIENT)
    language = models.CharField(
        _("language"), max_length=8, choices=Language.choices, default=Language.EN
    )
    time_zone = models.CharField(
        _("time zone"), max_length=64, default="UTC", validators=[validate_time_zone]
    )
    is_active = models.BooleanField(_("active"), default=True)
    is_staff = models.BooleanField(_("staff status"), default=False, editable=False)
    must_change_password = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    objects = UserManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
            models.CheckConstraint(
                condition=models.Q(role__in=[r.value for r in Role]),
                name="accounts_user_role_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.email or self.phone or str(self.id)

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.is_staff = self.role in STAFF_ROLES
        if self.email:
            self.email = self.email.lower()
        super().save(*args, **kwargs)

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()
