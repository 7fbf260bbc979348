"""Erasure against the writes racing it: a profile change that passed its token check before
the erasure committed must not write personal data back; erasure itself writes only what it
changes, once."""

from __future__ import annotations

import pytest

from accounts.errors import AccountErased, AccountInactive
from accounts.models import PatientProfile, User
from accounts.services import (
    account_delete,
    profile_update,
    user_set_active,
    user_update_by_admin,
)
from audit.models import AuditEvent
from tests.factories import make_user
from tests.threads import run_together


@pytest.mark.django_db
def test_a_profile_change_read_before_the_erasure_is_refused_after_it():
    user = make_user(first_name="Rana")
    loaded = User.objects.get(pk=user.pk)  # the request's user, checked before the erasure
    account_delete(user=user)

    with pytest.raises(AccountErased):
        profile_update(
            user=loaded,
            changes={"first_name": "Rana", "date_of_birth": None, "city": "Giza"},
        )
    user.refresh_from_db()
    assert user.first_name == "" and user.deleted_at is not None
    assert PatientProfile.objects.get(user=user).city == ""


@pytest.mark.django_db
def test_a_profile_change_read_before_a_deactivation_is_refused():
    admin = make_user(role="admin")
    user = make_user(first_name="Rana")
    loaded = User.objects.get(pk=user.pk)
    user_set_active(actor=admin, user=user, active=False)
    with pytest.raises(AccountInactive):
        profile_update(user=loaded, changes={"first_name": "Other"})
    user.refresh_from_db()
    assert user.first_name == "Rana"


@pytest.mark.django_db
def test_an_admin_cannot_rename_an_erased_account():
    admin = make_user(role="admin")
    user = make_user(first_name="Rana")
    loaded = User.objects.get(pk=user.pk)
    account_delete(user=user)
    with pytest.raises(AccountErased):
        user_update_by_admin(actor=admin, user=loaded, changes={"last_name": "Said"})
    user.refresh_from_db()
    assert (user.first_name, user.last_name) == ("", "")


@pytest.mark.django_db
def test_erasure_writes_only_what_it_changes():
    user = make_user(first_name="Rana", language="en")
    loaded = User.objects.get(pk=user.pk)
    User.objects.filter(pk=user.pk).update(language="ar", time_zone="Africa/Cairo")
    account_delete(user=loaded)
    user.refresh_from_db()
    assert (user.language, user.time_zone) == ("ar", "Africa/Cairo")
    assert user.email is None and user.first_name == ""


@pytest.mark.django_db(transaction=True)
def test_two_erasures_at_once_erase_once():
    user = make_user(first_name="Rana")
    results, errors = run_together(2, lambda n: account_delete(user=User.objects.get(pk=user.pk)))
    assert errors == [] and len(results) == 2
    assert AuditEvent.objects.filter(action="user.deleted", target_id=str(user.pk)).count() == 1
