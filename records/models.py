"""Medical files, the doctors they are shared with, and staff break-glass accesses.

A record's bytes live in object storage under a key that carries no file name: first in the
quarantine prefix, then, once clamd has called them clean, under the records prefix. Nothing
is downloadable unless ``status`` is ``clean`` (fail closed). Title, notes and the original
file name are protected health information and are encrypted at rest.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from core.fields import EncryptedTextField


class Category(models.TextChoices):
    LAB_RESULT = "lab_result", _("Lab result")
    IMAGING = "imaging", _("Imaging")
    PRESCRIPTION = "prescription", _("Prescription")
    REPORT = "report", _("Report")
    OTHER = "other", _("Other")


class ScanStatus(models.TextChoices):
    AWAITING_UPLOAD = "awaiting_upload", _("Awaiting upload")  # direct upload not finalised
    PENDING = "pending", _("Pending scan")
    CLEAN = "clean", _("Clean")
    INFECTED = "infected", _("Infected")
    REJECTED = "rejected", _("Rejected")  # changed after its checks: deleted unscanned


class MedicalRecord(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    patient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="medical_records"
    )
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    category = models.CharField(max_length=16, choices=Category.choices)
    title = EncryptedTextField()
    notes = EncryptedTextField(blank=True, default="")
    record_date = models.DateField(null=True, blank=True)
    file_name = EncryptedTextField()
    content_type = models.CharField(max_length=64, blank=True)
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True)
    storage_key = models.CharField(max_length=255)
    status = models.CharField(max_length=16, choices=ScanStatus.choices, default=ScanStatus.PENDING)
    signature = models.CharField(max_length=200, blank=True)
    scan_attempts = models.PositiveIntegerField(default=0)
    scanned_at = models.DateTimeField(null=True, blank=True)
    upload_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    deleted_at = models.DateTimeField(null=True, blank=True)
    purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["patient", "-created_at"], name="record_patient_created"),
            models.Index(
                fields=["deleted_at"],
                name="record_deleted_unpurged",
                condition=Q(deleted_at__isnull=False, purged_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"record {self.id}"


class AccessGrant(models.Model):
    """A patient shared one record with one doctor; revoking ends it (the row stays)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    record = models.ForeignKey(MedicalRecord, on_delete=models.CASCADE, related_name="grants")
    doctor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="record_grants"
    )
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["record", "doctor"],
                condition=Q(revoked_at__isnull=True),
                name="record_grant_one_active",
            )
        ]

    def __str__(self) -> str:
        return f"grant {self.id}"


class BreakGlassAccess(models.Model):
    """A staff member's time-limited access to one patient's records, with a reason."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    staff = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    patient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    reason = EncryptedTextField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["staff", "patient", "expires_at"], name="breakglass_idx")]

    def __str__(self) -> str:
        return f"break-glass {self.id}"
