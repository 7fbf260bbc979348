"""The directory's cache version is never reused: a version key that Redis evicted (memory
pressure, a policy that drops keys without an expiry) starts again from a value no cached
answer was stored under, so answers stored before it never come back."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from core.invalidation import cache_invalidate
from doctors import services
from doctors.models import DoctorProfile
from tests.doctors.factories import doctor

pytestmark = pytest.mark.django_db


def _rename(profile: DoctorProfile, designation: str) -> None:
    """A change that skips the services' invalidation: what an answer cached before it
    shows stays until the version moves."""
    DoctorProfile.objects.filter(pk=profile.pk).update(designation=designation)


@pytest.mark.parametrize("evicted_then", ["read", "bump"])
def test_answers_stored_under_an_evicted_version_are_not_served_again(api, evicted_then):
    cache.delete(services.CACHE_VERSION_KEY)
    profile = doctor()
    url = f"/api/v1/doctors/{profile.id}"
    _rename(profile, "First")
    assert api.get(url).json()["designation"] == "First"  # stored under the first version
    assert cache_invalidate.call("bump", [services.CACHE_VERSION_KEY], 1) is True
    _rename(profile, "Second")
    if evicted_then == "bump":  # an answer stored under the second version too
        assert api.get(url).json()["designation"] == "Second"
    cache.delete(services.CACHE_VERSION_KEY)  # evicted
    _rename(profile, "Third")
    if evicted_then == "bump":  # a change bumps the missing version before any read
        assert cache_invalidate.call("bump", [services.CACHE_VERSION_KEY], 1) is True
    # else the next read finds no version: neither way does an older answer come back
    assert api.get(url).json()["designation"] == "Third"
