"""Keeps :class:`doctors.models.DirectoryEntry` (the nearby-search index by specialty) in step
with clinics and doctors' specialties.

Signals, not service calls: the index is derived data and must follow every write of its
sources (the services, the Django admin's specialty editor, fixtures), or searches would
silently miss doctors. Writes that bypass signals (``bulk_create`` in ``seed_demo``) call
:func:`rebuild` themselves. Verification and account state are not copied: the search joins
the doctor's row for those, so verifying or deactivating a doctor never touches the index.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db.models.signals import m2m_changed, post_save

from doctors.models import Clinic, DirectoryEntry, DoctorProfile

_COPIED = ("latitude", "longitude", "h3_r3", "h3_r5", "h3_r7")


def rebuild(
    *, doctor_ids: Iterable[Any] | None = None, clinic_ids: Iterable[Any] | None = None
) -> int:
    """Rewrite the entries of these doctors (or of these clinics; all when neither is given).
    Returns the number of entries written."""
    clinics = Clinic.objects.all()
    if doctor_ids is not None:
        clinics = clinics.filter(doctor_id__in=list(doctor_ids))
    if clinic_ids is not None:
        clinics = clinics.filter(id__in=list(clinic_ids))
    stale = DirectoryEntry.objects.all()
    if doctor_ids is not None or clinic_ids is not None:
        stale = stale.filter(clinic__in=clinics.values("id"))
    stale.delete()
    through = DoctorProfile.specialties.through
    specialties: dict[Any, list[int]] = {}
    for doctor_id, specialty_id in through.objects.filter(
        doctorprofile_id__in=clinics.values("doctor_id")
    ).values_list("doctorprofile_id", "specialty_id"):
        specialties.setdefault(doctor_id, []).append(specialty_id)
    entries = [
        DirectoryEntry(
            specialty_id=specialty_id,
            clinic_id=row["id"],
            doctor_id=row["doctor_id"],
            **{key: row[key] for key in _COPIED},
        )
        for row in clinics.values("id", "doctor_id", *_COPIED).iterator(chunk_size=5000)
        for specialty_id in specialties.get(row["doctor_id"], ())
    ]
    DirectoryEntry.objects.bulk_create(entries, batch_size=5000)
    return len(entries)


def _clinic_saved(sender: type, instance: Clinic, raw: bool = False, **kwargs: Any) -> None:
    if not raw:
        rebuild(clinic_ids=[instance.pk])


def _specialties_changed(
    sender: type, instance: Any, action: str, reverse: bool, pk_set: set | None, **kwargs: Any
) -> None:
    if action not in {"post_add", "post_remove", "post_clear"}:
        return
    if not reverse:  # doctor.specialties.add/remove/set/clear
        rebuild(doctor_ids=[instance.pk])
    elif action == "post_clear":  # specialty.doctors.clear(): the specialty has no doctor left
        DirectoryEntry.objects.filter(specialty_id=instance.pk).delete()
    else:  # specialty.doctors.add/remove
        rebuild(doctor_ids=pk_set or ())


def connect() -> None:
    post_save.connect(_clinic_saved, sender=Clinic, dispatch_uid="directory-index-clinic")
    m2m_changed.connect(
        _specialties_changed,
        sender=DoctorProfile.specialties.through,
        dispatch_uid="directory-index-specialties",
    )
