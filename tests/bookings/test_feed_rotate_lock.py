"""A calendar feed made while its owner's account is being closed: the closing deletes it
(the account's feeds go with it), so the URL does not come back to life when the account is
reopened."""

from __future__ import annotations

import pytest

from accounts.errors import AccountInactive
from bookings import calendar
from bookings.models import CalendarFeed
from tests.bookings.test_lock_order import race
from tests.factories import make_user


def _set_active(user, active: bool) -> bool:
    user.is_active = active
    user.save()
    return True


@pytest.mark.django_db(transaction=True)
def test_a_feed_made_beside_a_deactivation_does_not_survive_it(monkeypatch):
    """The rotation is paused before it writes the feed; the account is deactivated meanwhile.
    Without the user's row held, the deactivation deleted the feeds it saw (none) and the new
    one was written after it: reactivated, the account's old URL worked again."""
    user = make_user()
    outcome = race(  # the rotation paused after making its secret, before storing it
        monkeypatch,
        lambda: calendar.feed_token_rotate(user=user),
        lambda: _set_active(user, False),
        at=(calendar, "_digest"),
    )
    assert outcome.second_waited  # for the rotation, which holds the user's row
    assert isinstance(outcome.first, str), outcome.first
    assert outcome.second is True, outcome.second
    assert not CalendarFeed.objects.filter(user=user).exists()

    _set_active(user, True)
    assert calendar.feed_owner(outcome.first) is None


@pytest.mark.django_db
def test_a_closed_account_gets_no_feed():
    """Its token was checked before the account was closed: the rotation is refused."""
    user = make_user(is_active=False)
    with pytest.raises(AccountInactive):
        calendar.feed_token_rotate(user=user)
    assert not CalendarFeed.objects.filter(user=user).exists()
