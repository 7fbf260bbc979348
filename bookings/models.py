"""Availability and appointments.

Times: rules live in the clinic's time zone (a video-only doctor's: their profile's) as wall
clock times; appointments are stored as UTC instants. Conflicts are settled by the database:
on PostgreSQL an exclusion constraint over the doctor's time range for active appointments
(and another over the patient's), on SQLite the IMMEDIATE write transaction serialises them.
"""

from __future__ import annotations

import uuid
from datetime import time
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.fields import EncryptedTextField
from doctors.models import Clinic, DoctorProfile, Mode


class AvailabilityRule(models.Model):
    """Recurring weekly hours: on ``weekday`` from ``start`` to ``end`` (wall clock in the
    clinic's zone; an ``end`` of 00:00 is the midnight that ends the day), slots of
    ``slot_minutes`` separated by ``buffer_minutes``."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    doctor = models.ForeignKey(
        DoctorProfile, on_delete=models.CASCADE, related_name="availability_rules"
    )
    clinic = models.ForeignKey(
        Clinic, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    mode = models.CharField(max_length=16, choices=Mode.choices)
    weekday = models.PositiveSmallIntegerField()  # 0 = Monday ... 6 = Sunday
    start = models.TimeField()
    end = models.TimeField()
    slot_minutes = models.PositiveSmallIntegerField(default=30)
    buffer_minutes = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(weekday__lte=6), name="rule_weekday_range"),
            models.CheckConstraint(
                condition=Q(start__lt=models.F("end")) | Q(end=time(0)),
                name="rule_start_before_end",
            ),
            models.CheckConstraint(
                condition=Q(slot_minutes__gte=5, slot_minutes__lte=480), name="rule_slot_length"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.doctor_id} {self.weekday} {self.start}-{self.end}"


class ExtraHours(models.Model):
    """One-off hours on a date (wall clock in the clinic's zone; an ``end`` of 00:00 is the
    midnight that ends the day)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    doctor = models.ForeignKey(DoctorProfile, on_delete=models.CASCADE, related_name="extra_hours")
    clinic = models.ForeignKey(
        Clinic, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    mode = models.CharField(max_length=16, choices=Mode.choices)
    date = models.DateField()
    start = models.TimeField()
    end = models.TimeField()
    slot_minutes = models.PositiveSmallIntegerField(default=30)
    buffer_minutes = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(start__lt=models.F("end")) | Q(end=time(0)),
                name="extra_start_before_end",
            )
        ]

    def __str__(self) -> str:
        return f"{self.doctor_id} {self.date} {self.start}-{self.end}"


class TimeOff(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    doctor = models.ForeignKey(DoctorProfile, on_delete=models.CASCADE, related_name="time_off")
    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(start__lt=models.F("end")), name="timeoff_start_before_end"
            )
        ]

    def __str__(self) -> str:
        return f"{self.doctor_id} off {self.start}-{self.end}"


class Status(models.TextChoices):
    HELD = "held", _("Held")
    PENDING = "pending", _("Awaiting the doctor")
    CONFIRMED = "confirmed", _("Confirmed")
    COMPLETED = "completed", _("Completed")
    NO_SHOW = "no_show", _("No-show")
    CANCELLED = "cancelled", _("Cancelled")
    REJECTED = "rejected", _("Rejected")


ACTIVE = (Status.HELD, Status.PENDING, Status.CONFIRMED)


def protect_upcoming(collector: Any, field: Any, sub_objs: Any, using: str) -> None:
    """``on_delete`` of an appointment's clinic: a clinic with upcoming appointments is not
    deleted (``ProtectedError``: they are cancelled or moved first, and their patients told);
    past ones keep their history without it."""
    now = timezone.now()
    if hasattr(sub_objs, "filter"):  # a queryset (Django's usual): one query, not one a row
        upcoming = list(sub_objs.filter(status__in=ACTIVE, end__gt=now)[:20])
    else:
        upcoming = [a for a in sub_objs if a.status in ACTIVE and a.end > now]
    if upcoming:
        raise models.ProtectedError(
            "The clinic has upcoming appointments: cancel or move them first.", set(upcoming)
        )
    models.SET_NULL(collector, field, sub_objs, using)


class Appointment(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    doctor = models.ForeignKey(DoctorProfile, on_delete=models.PROTECT, related_name="appointments")
    patient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="appointments"
    )
    clinic = models.ForeignKey(
        Clinic, null=True, blank=True, on_delete=protect_upcoming, related_name="+"
    )
    mode = models.CharField(max_length=16, choices=Mode.choices)
    start = models.DateTimeField()
    end = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices)
    reason = EncryptedTextField(blank=True, default="")
    notes = EncryptedTextField(blank=True, default="")
    hold_expires_at = models.DateTimeField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)  # held, then paid online
    rescheduled_from = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="rescheduled_to"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            models.Index(fields=["doctor", "start"], name="appt_doctor_start_idx"),
            models.Index(fields=["patient", "start"], name="appt_patient_start_idx"),
            models.Index(fields=["status", "hold_expires_at"], name="appt_status_hold_idx"),
            # the reminders due (``bookings.tasks.reminders_due``), every minute
            models.Index(
                fields=["start"], condition=Q(status="confirmed"), name="appt_confirmed_start_idx"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(start__lt=models.F("end")), name="appt_start_before_end"
            ),
        ]

    def __str__(self) -> str:
        return f"appointment {self.id} ({self.status})"


# The reasons the platform itself writes into a history: stored in English, shown in the
# reader's language (a reason a person typed is shown as typed).
RESCHEDULED = "rescheduled"
HOLD_EXPIRED = "hold expired"
COMPLETED_AUTOMATICALLY = "completed automatically"
REQUEST_LAPSED = "not answered in time"
ACCOUNT_CLOSED = "account closed"
VERIFICATION_WITHDRAWN = "doctor's verification withdrawn"
ROLE_CHANGED = "account role changed"
PAID = "paid"
SYSTEM_REASONS = {
    RESCHEDULED: _("rescheduled"),
    HOLD_EXPIRED: _("hold expired"),
    COMPLETED_AUTOMATICALLY: _("completed automatically"),
    REQUEST_LAPSED: _("not answered in time"),
    ACCOUNT_CLOSED: _("account closed"),
    VERIFICATION_WITHDRAWN: _("doctor's verification withdrawn"),
    ROLE_CHANGED: _("account role changed"),
    PAID: _("paid"),
}


class StatusChange(models.Model):
    """The appointment's history: every transition, who made it and why."""

    appointment = models.ForeignKey(Appointment, on_delete=models.CASCADE, related_name="history")
    status = models.CharField(max_length=16, choices=Status.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # what people write here (why a doctor cancels, rejects) can be clinical: encrypted
    reason = EncryptedTextField(blank=True, default="")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.appointment_id} -> {self.status}"

    @property
    def shown_reason(self) -> str:
        return str(SYSTEM_REASONS.get(self.reason, self.reason))


class BookingPolicy(models.Model):
    """A doctor's booking rules; platform defaults until the doctor changes them."""

    doctor = models.OneToOneField(
        DoctorProfile, on_delete=models.CASCADE, primary_key=True, related_name="booking_policy"
    )
    min_notice_minutes = models.PositiveIntegerField(default=60)
    window_days = models.PositiveSmallIntegerField(default=60)
    cancel_cutoff_hours = models.PositiveSmallIntegerField(default=24)
    requires_approval = models.BooleanField(default=False)
    payment_required = models.BooleanField(default=False)
    hold_minutes = models.PositiveSmallIntegerField(default=15)

    def __str__(self) -> str:
        return f"policy of {self.doctor_id}"


class ReminderDelivery(models.Model):
    """One row per reminder sent: the unique key that makes a reminder exactly-once even with
    several workers and retried tasks."""

    appointment = models.ForeignKey(Appointment, on_delete=models.CASCADE, related_name="reminders")
    offset_minutes = models.PositiveIntegerField()
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["appointment", "offset_minutes"], name="reminder_once_per_offset"
            )
        ]

    def __str__(self) -> str:
        return f"reminder {self.appointment_id} -{self.offset_minutes}m"


class CalendarFeed(models.Model):
    """A secret URL a calendar app subscribes to; rotating the token revokes the old URL.
    Only the token's SHA-256 digest is kept (hex): the URL is shown once, when it is made."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="calendar_feed"
    )
    token_digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"calendar feed of {self.user_id}"


class Review(models.Model):
    """A patient's rating of a completed appointment (one per appointment); the doctor may
    reply once; staff may hide it (audited). Lives with bookings because it hangs on an
    appointment (doctors, below bookings, cannot know appointments)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    appointment = models.OneToOneField(Appointment, on_delete=models.PROTECT, related_name="review")
    doctor = models.ForeignKey(DoctorProfile, on_delete=models.CASCADE, related_name="reviews")
    patient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reviews"
    )
    rating = models.PositiveSmallIntegerField()
    text = models.TextField(blank=True, max_length=2000)
    reply = models.TextField(blank=True, max_length=2000)
    replied_at = models.DateTimeField(null=True, blank=True)
    hidden = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(rating__gte=1, rating__lte=5), name="review_rating_1_5"
            )
        ]
        indexes = [models.Index(fields=["doctor", "-created_at"], name="review_doctor_idx")]

    def __str__(self) -> str:
        return f"review {self.rating} of {self.doctor_id}"
