"""Keeps :class:`doctors.models.DirectoryEntry` (the nearby-search index by specialty) in step
with clinics, doctors' specialties and whether each doctor is listed (verified, with an active
account: copied so that a search by specialty needs no join at all), and each profile's
``search_name`` in step with its account's name.

Signals, not service calls: the index is derived data and must follow every write of its
sources (the services, the Django admin, fixtures), or searches would silently miss or show
doctors. Writes that bypass signals (``bulk_create`` in ``seed_demo``, ``QuerySet.update``)
call :func:`rebuild` or :func:`relist` themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.signals import m2m_changed, post_save, pre_save

from accounts.models import Role
from doctors.geocoding import normalise, run_together
from doctors.models import Clinic, DirectoryEntry, DoctorProfile, Verification

_COPIED = ("latitude", "longitude", "h3_r3", "h3_r5", "h3_r7")


def rebuild(
    *, doctor_ids: Iterable[Any] | None = None, clinic_ids: Iterable[Any] | None = None
) -> int:
    """Rewrite the entries of these doctors (or of these clinics; all when neither is given).
    Returns the number of entries written.

    Two rebuilds of one doctor's entries at once (the doctor's profile edit and the admin
    site's, or a clinic's edit) are taken one after the other: the doctors' profiles are
    locked first (``FOR NO KEY UPDATE``, by id; a caller may hold them already; a rebuild
    of all, for bulk loads, locks none), so that the second reads what the first committed. And the entries are written over (an upsert on
    the (clinic, specialty) key), only those no longer wanted deleted: two writers of the
    same entry never fail on the unique key (a 500 of a legitimate save)."""
    with transaction.atomic(savepoint=False):  # the caller's, if it has one
        return _rebuild(doctor_ids=doctor_ids, clinic_ids=clinic_ids)


def _rebuild(*, doctor_ids: Iterable[Any] | None, clinic_ids: Iterable[Any] | None) -> int:
    clinics = Clinic.objects.all()
    if doctor_ids is not None:
        clinics = clinics.filter(doctor_id__in=list(doctor_ids))
    if clinic_ids is not None:
        clinics = clinics.filter(id__in=list(clinic_ids))
    scoped = doctor_ids is not None or clinic_ids is not None
    owners: set[Any] = set()
    if scoped:
        # The owners as a list of ids: a subquery let the planner, on statistics not yet
        # refreshed (a bulk seed), scan every account for each clinic (~14 s a batch).
        owners = set(clinics.values_list("doctor_id", flat=True))
        if owners:
            list(
                DoctorProfile.objects.select_for_update(no_key=True)
                .filter(id__in=owners)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
    through = DoctorProfile.specialties.through
    # Entries whose specialty is no longer their clinic's doctor's.
    unwanted = DirectoryEntry.objects.exclude(
        Exists(
            through.objects.filter(
                doctorprofile_id=OuterRef("clinic__doctor_id"),
                specialty_id=OuterRef("specialty_id"),
            )
        )
    )
    if scoped:
        unwanted = unwanted.filter(clinic__in=clinics.values("id"))
    unwanted.delete()
    shown = listed_doctors()
    if scoped:
        shown = shown.filter(id__in=owners)
    listed = set(shown.values_list("id", flat=True))
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
            listed=row["doctor_id"] in listed,
            **{key: row[key] for key in _COPIED},
        )
        for row in clinics.values("id", "doctor_id", *_COPIED).iterator(chunk_size=5000)
        for specialty_id in specialties.get(row["doctor_id"], ())
    ]
    DirectoryEntry.objects.bulk_create(
        entries,
        batch_size=5000,
        update_conflicts=True,
        unique_fields=["clinic", "specialty"],
        update_fields=["doctor", "listed", *_COPIED],
    )
    return len(entries)


def listing_q(prefix: str = "") -> Q:
    """The one definition of a listed doctor: verified, with an active account that still
    has the doctor's role; on ``DoctorProfile`` itself or, with ``prefix="doctor__"``, on a
    row that points at one."""
    return Q(
        **{
            f"{prefix}verification": Verification.VERIFIED,
            f"{prefix}user__is_active": True,
            f"{prefix}user__role": Role.DOCTOR,
        }
    )


def listed_doctors() -> QuerySet[DoctorProfile]:
    return DoctorProfile.objects.filter(listing_q())


def relist(*, doctor_ids: Iterable[Any]) -> None:
    """Copy whether these doctors are listed into their entries."""
    ids = set(doctor_ids)
    if not ids:
        return
    shown = set(listed_doctors().filter(id__in=ids).values_list("id", flat=True))
    if shown:
        DirectoryEntry.objects.filter(doctor_id__in=shown, listed=False).update(listed=True)
    if ids - shown:
        DirectoryEntry.objects.filter(doctor_id__in=ids - shown, listed=True).update(listed=False)


def search_name(first_name: str, last_name: str) -> str:
    """A doctor's name as the name filter compares it: :func:`doctors.geocoding.normalise`-d,
    then (when it has several words) its words run together too
    (:func:`doctors.geocoding.run_together`): "عبدالله" finds "عبد الله حسن", as "عبد الله"
    finds "عبدالله حسن". The filter looks each word typed up as a part of this text."""
    name = f"{first_name} {last_name}"
    words = normalise(name)
    if len(words.split()) < 2:
        return words
    return f"{words} {run_together(name)}"


def _profile_saving(
    sender: type, instance: DoctorProfile, raw: bool = False, **kwargs: Any
) -> None:
    """A new profile takes its account's name (later renames: :func:`_user_saved`)."""
    if not raw and instance._state.adding:
        instance.search_name = search_name(instance.user.first_name, instance.user.last_name)


def _profile_saved(sender: type, instance: DoctorProfile, raw: bool = False, **kwargs: Any) -> None:
    if not raw:
        relist(doctor_ids=[instance.pk])


# What the directory shows of a doctor's account: whether they are listed, and their name.
_SHOWN_USER_FIELDS = {"first_name", "last_name", "is_active", "role"}


def _user_saved(
    sender: type, instance: Any, raw: bool = False, update_fields: Any = None, **kwargs: Any
) -> None:
    """A doctor's account saved by any path (the API's services, the admin site, a shell):
    relisted, and every cached directory answer dropped; not for the saves that change
    nothing shown (the ``last_login`` save of each login)."""
    if raw or (update_fields is not None and not _SHOWN_USER_FIELDS & set(update_fields)):
        return
    doctor_ids = list(
        DoctorProfile.objects.filter(user_id=instance.pk).values_list("id", flat=True)
    )
    if doctor_ids:
        from doctors.services import directory_changed

        name = search_name(instance.first_name, instance.last_name)
        DoctorProfile.objects.filter(id__in=doctor_ids).exclude(search_name=name).update(
            search_name=name
        )
        relist(doctor_ids=doctor_ids)
        directory_changed()


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
    pre_save.connect(
        _profile_saving, sender=DoctorProfile, dispatch_uid="directory-index-profile-name"
    )
    post_save.connect(_profile_saved, sender=DoctorProfile, dispatch_uid="directory-index-profile")
    post_save.connect(
        _user_saved, sender=settings.AUTH_USER_MODEL, dispatch_uid="directory-index-user"
    )
    m2m_changed.connect(
        _specialties_changed,
        sender=DoctorProfile.specialties.through,
        dispatch_uid="directory-index-specialties",
    )
