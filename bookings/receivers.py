"""What bookings do when other apps' records change (signals: accounts and doctors may not
import bookings)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_save

from accounts.models import User
from doctors.models import DoctorProfile, Verification


def _account_saved(sender: type, instance: User, raw: bool = False, **kwargs: Any) -> None:
    """A closed account (deactivated, or deleted: both save ``is_active=False``) keeps no
    upcoming appointment, and no calendar feed: reopened, it makes a new URL (the old one,
    perhaps shared when the account was closed, stays dead)."""
    update_fields = kwargs.get("update_fields")
    if raw or instance.is_active or (update_fields and "is_active" not in update_fields):
        return
    from bookings.models import CalendarFeed
    from bookings.services import appointments_close_for

    with transaction.atomic():
        appointments_close_for(instance)
        CalendarFeed.objects.filter(user=instance).delete()


def _doctor_saved(sender: type, instance: DoctorProfile, raw: bool = False, **kwargs: Any) -> None:
    """A doctor rejected (verification withdrawn) keeps no upcoming appointment: the
    directory no longer lists them, and nobody can book them."""
    update_fields = kwargs.get("update_fields")
    if (
        raw
        or instance.verification != Verification.REJECTED
        or (update_fields and "verification" not in update_fields)
    ):
        return
    from bookings.services import appointments_withdraw_for

    with transaction.atomic():
        appointments_withdraw_for(instance)


def connect() -> None:
    post_save.connect(_account_saved, sender=User, dispatch_uid="bookings-account-closed")
    post_save.connect(
        _doctor_saved, sender=DoctorProfile, dispatch_uid="bookings-verification-withdrawn"
    )
