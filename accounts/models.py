from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models.functions import Lower
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy as _

from core.cache import best_effort
from core.fields import EncryptedTextField
from core.schemas import TIME_ZONE_NAMES


def validate_time_zone(value: str) -> None:
    if value not in TIME_ZONE_NAMES:
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
    groups' permissions. Only admins may be superusers: an admin moved to another role stops
    being one.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(_("e-mail address"), unique=True, null=True, blank=True)
    # Unique once verified (see Meta): an unverified number claims nothing, so nobody blocks a
    # number by signing up with it. NULL, not "", for "no phone" (as when it was unique).
    phone = models.CharField(_("phone number"), max_length=20, null=True, blank=True)  # noqa: DJ001
    phone_verified = models.BooleanField(default=False)
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
    deleted_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Mixed into the session auth hash: raising it ends every session of the user for good
    # (deactivation), as a password change does.
    session_epoch = models.PositiveIntegerField(default=0, editable=False)

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    objects = UserManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
            models.UniqueConstraint(
                fields=["phone"],
                condition=models.Q(phone_verified=True),
                name="accounts_user_verified_phone_unique",
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=[r.value for r in Role]),
                name="accounts_user_role_valid",
            ),
        ]

    def __str__(self) -> str:
        return self.email or self.phone or str(self.id)

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.is_staff = self.role in STAFF_ROLES
        if self.role != Role.ADMIN:
            self.is_superuser = False
        if self.email:
            self.email = self.email.lower()
        super().save(*args, **kwargs)
        if self.pk is not None:
            # Authentication reads a cached snapshot of this user: drop it now and again
            # after commit (a concurrent request may have re-cached the old row meanwhile).
            from accounts.tokens_validation import snapshot_key

            key = snapshot_key(self.pk)
            cache.delete(key)  # failing here fails the save: no change a snapshot could hide
            transaction.on_commit(lambda: best_effort(cache.delete, key, what="user snapshot"))

    @property
    def full_name(self) -> str:
        return full_name(self.first_name, self.last_name)

    def get_session_auth_hash(self) -> str:
        return self._session_auth_hash()

    def get_session_auth_fallback_hash(self) -> Iterator[str]:
        for secret in settings.SECRET_KEY_FALLBACKS:
            yield self._session_auth_hash(secret=secret)

    def _session_auth_hash(self, secret: str | bytes | None = None) -> str:
        # Django's HMAC of the password hash, with the epoch once it has been raised (epoch 0
        # gives Django's own hash: sessions made before the epoch existed stay valid).
        value = f"{self.password}:{self.session_epoch}" if self.session_epoch else self.password
        return salted_hmac(
            "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash",
            value,
            secret=secret,
            algorithm="sha256",
        ).hexdigest()


def full_name(first_name: str, last_name: str) -> str:
    """How a user's name is shown (also to cards built from plain rows)."""
    return f"{first_name} {last_name}".strip()


class Sex(models.TextChoices):
    FEMALE = "female", _("Female")
    MALE = "male", _("Male")


class PatientProfile(models.Model):
    """What only patients have. Date of birth is protected health information: encrypted."""

    user = models.OneToOneField(
        User, on_delete=models.CASCADE, related_name="patient_profile", primary_key=True
    )
    date_of_birth = EncryptedTextField(null=True, blank=True)
    sex = models.CharField(max_length=8, choices=Sex.choices, blank=True)
    city = models.CharField(max_length=120, blank=True)
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)

    def __str__(self) -> str:
        return f"patient profile of {self.user_id}"


class Invitation(models.Model):
    """A single-use, expiring code an admin issues so that a doctor can sign up."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code_hash = models.CharField(max_length=64, unique=True)
    email = models.EmailField(blank=True, help_text=_("If set, only this e-mail may use the code."))
    created_by = models.ForeignKey(User, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_by = models.OneToOneField(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="invitation"
    )
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"invitation {self.id}"
