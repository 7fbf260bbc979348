"""What bookings do when other apps' records change (signals: accounts may not import
bookings)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models.signals import post_save

from accounts.models import User


def _account_saved(sender: type, instance: User, raw: bool = False, **kwargs: Any) -> None:
    """A closed account (deactivated, or deleted: both save ``is_active=False``) keeps no
    upcoming appointment."""
    update_fields = kwargs.get("update_fields")
    if raw or instance.is_active or (update_fields and "is_active" not in update_fields):
        return
    from bookings.services import appointments_close_for

    with transaction.atomic():
        appointments_close_for(instance)


def connect() -> None:
    post_save.connect(_account_saved, sender=User, dispatch_uid="bookings-account-closed")
