"""Doctor profiles on the Django admin site: validated as the API validates them, and kept
with their account."""

from __future__ import annotations

import pytest
from django.utils import translation

from accounts.models import Role
from doctors.models import DoctorProfile
from tests.accounts.admin_site import change_form, staff_client, superuser
from tests.doctors.factories import doctor
from tests.factories import make_user

pytestmark = pytest.mark.django_db

PROFILES = "/admin/doctors/doctorprofile/"


def change_url(profile: DoctorProfile) -> str:
    return f"{PROFILES}{profile.pk}/change/"


def test_bad_time_zone_and_languages_are_refused():
    client = staff_client(superuser())
    profile = doctor(languages=",ar,", currency="EGP", time_zone="Africa/Cairo")
    data = change_form(
        client,
        change_url(profile),
        time_zone="Mars/Olympus_Mons",  # read-only on a profile (the doctor's): ignored
        currency="zz!",  # read-only here (tests/doctors/test_admin_fixes.py): ignored
        languages="english, arabic",
    )
    r = client.post(change_url(profile), data)
    assert r.status_code == 200  # the form again, with its errors
    errors = r.context["adminform"].form.errors
    assert set(errors) == {"languages"}
    profile.refresh_from_db()
    assert (profile.time_zone, profile.currency, profile.languages) == (
        "Africa/Cairo",
        "EGP",
        ",ar,",
    )
    with translation.override("ar"):
        assert "رموز اللغات" in str(errors["languages"][0])


def test_languages_are_stored_as_searches_read_them(api):
    client = staff_client(superuser())
    profile = doctor(languages=",ar,")
    data = change_form(client, change_url(profile), languages="en, ar,en")
    assert client.post(change_url(profile), data).status_code == 302
    profile.refresh_from_db()
    assert profile.languages == ",ar,en,"
    r = api.get(f"/api/v1/doctors/{profile.pk}")
    assert r.status_code == 200
    assert r.json()["languages"] == ["ar", "en"]
    assert api.get("/api/v1/doctors?language=en").json()["items"][0]["id"] == str(profile.pk)


def test_a_profile_stays_with_its_account():
    client = staff_client(superuser())
    profile = doctor()
    owner = profile.user
    other = make_user(role=Role.DOCTOR)
    page = client.get(change_url(profile))
    assert "user" not in page.context["adminform"].form.fields
    data = change_form(client, change_url(profile), user=str(other.pk))
    assert client.post(change_url(profile), data).status_code == 302
    profile.refresh_from_db()
    assert profile.user == owner


def test_the_account_of_a_new_profile_is_picked_by_id_among_doctors():
    client = staff_client(superuser())
    page = client.get(f"{PROFILES}add/")
    assert page.status_code == 200
    assert '<select name="user"' not in page.content.decode()
    data = change_form(client, f"{PROFILES}add/", user=str(make_user().pk))
    r = client.post(f"{PROFILES}add/", data)
    assert r.status_code == 200
    assert "user" in r.context["adminform"].form.errors
    doctor_account = make_user(role=Role.DOCTOR)
    data["user"] = str(doctor_account.pk)
    assert client.post(f"{PROFILES}add/", data).status_code == 302
    assert DoctorProfile.objects.get(user=doctor_account).languages == ","
