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


def _role_saved(
    sender: type, instance: User, raw: bool = False, created: bool = False, **kwargs: Any
) -> None:
    """A role changed (an admin's ``user_update_by_admin`` saves ``role`` among its
    ``update_fields``) leaves no upcoming appointment on the side of a role the user no
    longer holds: a demoted doctor could neither see nor cancel them, and their patients
    would still expect the visit. A whole-row save (no ``update_fields``) may have changed
    the role too: the appointments that exist decide (usually none, and nothing changes). A
    closed account is :func:`_account_saved`'s."""
    update_fields = kwargs.get("update_fields")
    if raw or created or not instance.is_active or (update_fields and "role" not in update_fields):
        return
    from bookings.services import appointments_close_for_role

    with transaction.atomic():
        appointments_close_for_role(instance)


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
    post_save.connect(_role_saved, sender=User, dispatch_uid="bookings-role-changed")
    post_save.connect(
        _doctor_saved, sender=DoctorProfile, dispatch_uid="bookings-verification-withdrawn"
    )
