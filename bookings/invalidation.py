"""Empties a doctor's cached schedule (:func:`bookings.selectors.schedule_of`) when anything it
is made of changes: weekly rules, extra hours, the booking policy, a clinic (its time zone),
the doctor's profile (the zone of hours without a clinic). A change to hours, the policy or
time off also invalidates the directory's cached pages, whose availability filter and
"next available" depend on them (a clinic's or a profile's change does already).

Signals, so that every writer is covered (services, the Django admin, fixtures). The cache is
emptied after commit, when the new rows are visible (tried again later if Redis fails then:
:mod:`core.invalidation`); a reader that raced the commit caches nothing, its lease voided
by the delete (:func:`bookings.selectors.schedule_of`).
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save

from bookings.models import AvailabilityRule, BookingPolicy, ExtraHours, TimeOff
from bookings.selectors import schedule_key
from core.invalidation import invalidate_on_commit
from doctors.models import Clinic, DoctorProfile
from doctors.services import directory_changed


def _forget(doctor_id: Any) -> None:
    invalidate_on_commit("delete", schedule_key(doctor_id))  # tried again if Redis fails


def _changed(sender: type, instance: Any, **kwargs: Any) -> None:
    _forget(instance.pk if sender is DoctorProfile else instance.doctor_id)


def _hours_changed(sender: type, instance: Any, **kwargs: Any) -> None:
    directory_changed()


def connect() -> None:
    for model in (AvailabilityRule, ExtraHours, BookingPolicy, Clinic, DoctorProfile):
        for signal in (post_save, post_delete):
            signal.connect(_changed, sender=model, dispatch_uid=f"schedule-{model.__name__}")
    for hours in (AvailabilityRule, ExtraHours, BookingPolicy, TimeOff):
        for signal in (post_save, post_delete):
            signal.connect(_hours_changed, sender=hours, dispatch_uid=f"dir-{hours.__name__}")
