"""The doctor directory: specialties, doctor profiles, clinics (with their spatial index)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Upper
from django.utils.translation import gettext_lazy as _

from accounts.models import validate_time_zone
from core import money

# A language a doctor speaks: an ISO 639-1 code.
LANGUAGE_CODE = re.compile(r"[a-z]{2}")


def validate_currency(value: str) -> None:
    if value not in money.CURRENCIES:
        raise ValidationError(_("Unknown currency: use an ISO 4217 code."), code="invalid_currency")


def parse_languages(value: str) -> list[str]:
    """The ISO 639-1 codes in ``value``, separated by commas: as stored (",ar,en,") or as
    typed ("ar, en")."""
    codes = [code.strip() for code in value.split(",") if code.strip()]
    if not all(LANGUAGE_CODE.fullmatch(code) for code in codes):
        raise ValidationError(
            _("Enter two-letter language codes separated by commas, such as “ar, en”."),
            code="invalid_languages",
        )
    return codes


def validate_languages(value: str) -> None:
    parse_languages(value)


def languages_column(codes: Iterable[str]) -> str:
    """The stored form of a set of language codes: ",ar,en," (one portable LIKE finds one)."""
    return "," + "".join(f"{code}," for code in sorted(set(codes)))


class Specialty(models.Model):
    code = models.SlugField(max_length=64, unique=True)
    name_en = models.CharField(max_length=120)
    name_ar = models.CharField(max_length=120)

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "specialties"

    def __str__(self) -> str:
        return self.code

    def name(self, language: str) -> str:
        return self.name_ar if language == "ar" else self.name_en


class Verification(models.TextChoices):
    PENDING = "pending", _("Pending")
    VERIFIED = "verified", _("Verified")
    REJECTED = "rejected", _("Rejected")


class Mode(models.TextChoices):
    IN_PERSON = "in_person", _("In person")
    VIDEO = "video", _("Video")
    CHAT = "chat", _("Chat")


class DoctorProfile(models.Model):
    """A doctor's public profile. Listed only once verified (and the account is active).

    Ratings keep an exact sum and count, updated with ``F()`` so concurrent reviews never lose
    one; the average is derived from them.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="doctor_profile"
    )
    designation = models.CharField(max_length=120, blank=True)
    bio_en = models.TextField(blank=True)
    bio_ar = models.TextField(blank=True)
    specialties = models.ManyToManyField(Specialty, related_name="doctors", blank=True)
    # ISO 639-1 codes in canonical form ",ar,en," so that one portable LIKE finds a language.
    languages = models.CharField(
        max_length=100, default=",", blank=True, validators=[validate_languages]
    )
    fee_minor = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3, default="EGP", validators=[validate_currency])
    offers_in_person = models.BooleanField(default=True)
    offers_video = models.BooleanField(default=False)
    offers_chat = models.BooleanField(default=False)
    years_experience = models.PositiveSmallIntegerField(default=0)
    time_zone = models.CharField(max_length=64, default="UTC", validators=[validate_time_zone])
    verification = models.CharField(
        max_length=16, choices=Verification.choices, default=Verification.PENDING
    )
    verification_reason = models.TextField(blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    rating_sum = models.PositiveIntegerField(default=0)
    rating_count = models.PositiveIntegerField(default=0)
    # The account's name as the name filter compares it (doctors.index.search_name: folded
    # like city names, "أحمد" as "احمد"), kept by doctors.index whatever saves either.
    search_name = models.TextField(blank=True, default="", editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["fee_minor"], name="doctor_fee_idx", condition=Q(verification="verified")
            ),
            models.Index(fields=["verification"], name="doctor_verification_idx"),
        ]

    def __str__(self) -> str:
        return f"doctor {self.user_id}"

    def clean(self) -> None:
        try:
            self.languages = languages_column(parse_languages(self.languages))
        except ValidationError:
            pass  # clean_fields, run first, has said why

    @property
    def rating(self) -> float | None:
        return average_rating(self.rating_sum, self.rating_count)

    @property
    def language_codes(self) -> list[str]:
        return language_codes(self.languages)

    @property
    def modes(self) -> list[str]:
        return offered_modes(self.offers_in_person, self.offers_video, self.offers_chat)


# What a profile's properties derive from its columns, also for cards built from plain rows.
def average_rating(rating_sum: int, rating_count: int) -> float | None:
    """The average in hundredths, rounded half up in exact integers (4.395 is 4.4, 1.125 is
    1.13): as the ``min_rating`` filter (doctors.selectors) compares it. A float ``round``
    rounded the binary value instead (4.395 to 4.39), which no integer filter can follow."""
    if not rating_count:
        return None
    return ((200 * rating_sum + rating_count) // (2 * rating_count)) / 100


def language_codes(languages: str) -> list[str]:
    return [code for code in languages.split(",") if code]


def offered_modes(in_person: bool, video: bool, chat: bool) -> list[str]:
    offered = ((Mode.IN_PERSON, in_person), (Mode.VIDEO, video), (Mode.CHAT, chat))
    return [str(mode) for mode, on in offered if on]


class Clinic(models.Model):
    """Where a doctor sees patients. ``h3_r*`` are the clinic's H3 cells at the resolutions of
    :data:`doctors.geo.RESOLUTIONS`: the spatial index of the nearby search (see doctors/geo.py)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    doctor = models.ForeignKey(DoctorProfile, on_delete=models.CASCADE, related_name="clinics")
    name = models.CharField(max_length=120)
    address = models.CharField(max_length=300)
    city = models.CharField(max_length=120)
    # The names the city goes by (doctors.geocoding.city_key): ",cairo,قاهرة,"
    city_names = models.CharField(max_length=400, blank=True, default="")
    country = models.CharField(max_length=2)
    latitude = models.FloatField()
    longitude = models.FloatField()
    time_zone = models.CharField(max_length=64)
    h3_r3 = models.BigIntegerField(db_index=True)
    h3_r5 = models.BigIntegerField(db_index=True)
    h3_r7 = models.BigIntegerField(db_index=True)

    class Meta:
        indexes = [models.Index(Upper("city"), name="clinic_city_upper_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(latitude__gte=-90, latitude__lte=90), name="clinic_latitude_range"
            ),
            models.CheckConstraint(
                condition=Q(longitude__gte=-180, longitude__lte=180), name="clinic_longitude_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.city})"


class DirectoryEntry(models.Model):
    """The index of the nearby search by specialty: one row per clinic and specialty of the
    clinic's doctor, with the clinic's location and H3 cells copied in, so that
    ``specialty = X AND h3_rN IN (cells)`` is one index range per cell that also holds the
    columns the search reads (PostgreSQL covering indexes), instead of checking the
    specialty of every clinic near the point. Derived data: :mod:`doctors.index` keeps it in
    step with clinics, specialties and whether the doctor is listed (verified, active account),
    whatever writes them. Only listed rows are in the search indexes."""

    id = models.BigAutoField(primary_key=True)
    specialty = models.ForeignKey(
        Specialty, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # The unique (clinic, specialty) constraint is the clinic's index.
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+", db_index=False)
    doctor = models.ForeignKey(DoctorProfile, on_delete=models.CASCADE, related_name="+")
    latitude = models.FloatField()
    longitude = models.FloatField()
    h3_r3 = models.BigIntegerField()
    h3_r5 = models.BigIntegerField()
    h3_r7 = models.BigIntegerField()
    listed = models.BooleanField(default=False)  # = doctors.selectors.listed() holds the doctor

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["clinic", "specialty"], name="directory_entry_unique")
        ]
        indexes = [
            models.Index(
                fields=["specialty", column],
                include=["doctor", "latitude", "longitude"],
                condition=Q(listed=True),
                name=f"directory_entry_{column}_idx",
            )
            for column in ("h3_r3", "h3_r5", "h3_r7")
        ]

    def __str__(self) -> str:
        return f"{self.clinic_id} / {self.specialty_id}"
