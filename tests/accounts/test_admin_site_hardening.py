"""The admin site writes only what its page changed, never someone's login or second factor,
and audits what it changes: no whole-row saves undoing concurrent changes, no stale page
re-applying old values, no one-time password kept working, no address to sign in with added
to someone else's account."""

from __future__ import annotations

from typing import Any

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth.models import Group
from django.db.models import F
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import services
from accounts.admin import UserAdmin
from accounts.models import Invitation, Role, User
from audit.models import AuditEvent
from doctors import services as doctor_services
from doctors.admin import DoctorProfileAdmin
from doctors.models import Clinic, DoctorProfile, Verification
from tests.accounts.admin_site import change_form, staff_client, superuser
from tests.doctors.factories import doctor
from tests.factories import bearer, login, make_user, post

pytestmark = pytest.mark.django_db

USERS = "/admin/accounts/user/"
PROFILES = "/admin/doctors/doctorprofile/"
ADDRESSES = "/admin/account/emailaddress/"
DEVICES = "/admin/otp_totp/totpdevice/"


def user_url(user: User) -> str:
    return f"{USERS}{user.pk}/change/"


def profile_url(profile: DoctorProfile) -> str:
    return f"{PROFILES}{profile.pk}/change/"


def _meanwhile(monkeypatch: Any, admin_class: Any, change: Any) -> None:
    """``change`` is committed by someone else after the admin site read the row for a
    POST and before it saves."""
    original = admin_class.get_object

    def get_object(self: Any, request: Any, object_id: str, from_field: Any = None) -> Any:
        obj = original(self, request, object_id, from_field)
        if request.method == "POST" and obj is not None:
            change(obj)
        return obj

    monkeypatch.setattr(admin_class, "get_object", get_object)


# --- 1. logins and second factors are not added or changed here ---------------------------


def test_no_login_address_is_added_changed_or_verified_even_by_a_superuser():
    """A verified address added to a doctor's account would let its adder sign in as the
    doctor by e-mail code: unaudited, past the break-glass rule."""
    client = staff_client(superuser())
    victim = make_user(role=Role.DOCTOR)
    own = EmailAddress.objects.get(user=victim)
    pending = EmailAddress.objects.create(user=victim, email="second@example.com")
    assert client.get(ADDRESSES).status_code == 200  # still visible
    assert client.get(f"{ADDRESSES}{own.pk}/change/").status_code == 200  # read-only
    added = {"user": str(victim.pk), "email": "mallory@example.com", "verified": "on"}
    assert client.get(f"{ADDRESSES}add/").status_code == 403
    assert client.post(f"{ADDRESSES}add/", added).status_code == 403
    changed = {**added, "primary": "on"}
    assert client.post(f"{ADDRESSES}{own.pk}/change/", changed).status_code == 403
    assert client.post(f"{ADDRESSES}{own.pk}/delete/", {"post": "yes"}).status_code == 403
    client.post(ADDRESSES, {"action": "make_verified", "_selected_action": [pending.pk]})
    assert list(
        EmailAddress.objects.filter(user=victim).values_list("email", "verified").order_by("id")
    ) == [(own.email, True), ("second@example.com", False)]


def test_no_google_account_or_token_is_linked_or_changed_even_by_a_superuser():
    client = staff_client(superuser())
    victim = make_user(role=Role.DOCTOR)
    linked = SocialAccount.objects.create(user=victim, provider="google", uid="1")
    base = "/admin/socialaccount/socialaccount/"
    assert client.get(f"{base}add/").status_code == 403
    data = {"user": str(victim.pk), "provider": "google", "uid": "2", "extra_data": "{}"}
    assert client.post(f"{base}add/", data).status_code == 403
    assert client.post(f"{base}{linked.pk}/change/", data).status_code == 403
    assert client.post(f"{base}{linked.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/socialaccount/socialtoken/add/").status_code == 403
    assert list(SocialAccount.objects.values_list("uid", flat=True)) == ["1"]


def test_no_totp_device_is_added_or_changed_but_a_lost_one_may_be_removed():
    """A confirmed device with a key of the admin's choice would pass another staff
    member's second factor; a deleted one is enrolled again by its owner (password first)."""
    client = staff_client(superuser())
    other = make_user(role=Role.HELPER)
    device = {
        "user": str(other.pk),
        "name": "mine",
        "confirmed": "on",
        "key": "3132333435363738393031323334353637383930",
        "step": "30",
        "t0": "0",
        "digits": "6",
        "tolerance": "1",
        "drift": "0",
        "throttling_failure_count": "0",
    }
    assert client.get(f"{DEVICES}add/").status_code == 403
    assert client.post(f"{DEVICES}add/", device).status_code == 403
    assert not TOTPDevice.objects.filter(user=other).exists()
    lost = TOTPDevice.objects.create(user=other, name="phone", confirmed=False)
    assert client.post(f"{DEVICES}{lost.pk}/change/", device).status_code == 403
    lost.refresh_from_db()
    assert (lost.name, lost.confirmed) == ("phone", False)
    assert client.post(f"{DEVICES}{lost.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not TOTPDevice.objects.filter(pk=lost.pk).exists()


# --- 2. a user's save writes only what the page changed ----------------------------------


def test_a_user_save_keeps_what_changed_since_the_row_was_read(monkeypatch):
    client = staff_client(superuser())
    user = make_user()
    epoch = user.session_epoch
    data = change_form(client, user_url(user), first_name="Hala")

    def deactivate_and_reset_password(obj: User) -> None:
        User.objects.filter(pk=obj.pk).update(
            is_active=False, session_epoch=F("session_epoch") + 1, password="!"
        )

    _meanwhile(monkeypatch, UserAdmin, deactivate_and_reset_password)
    assert client.post(user_url(user), data).status_code == 302
    user.refresh_from_db()
    assert (user.first_name, user.is_active, user.session_epoch, user.password) == (
        "Hala",
        False,
        epoch + 1,
        "!",
    )


def test_an_account_erased_meanwhile_is_refused_and_stays_erased(monkeypatch):
    client = staff_client(superuser())
    user = make_user(first_name="Mona")
    erased_at = timezone.now()
    data = change_form(client, user_url(user), first_name="Hala")

    def erase(obj: User) -> None:
        User.objects.filter(pk=obj.pk).update(deleted_at=erased_at, first_name="")

    _meanwhile(monkeypatch, UserAdmin, erase)
    r = client.post(user_url(user), data)
    assert r.status_code == 200  # the form again, saying why
    assert "erased" in str(r.context["adminform"].form.non_field_errors())
    user.refresh_from_db()
    assert (user.deleted_at, user.first_name) == (erased_at, "")


# --- 3. a stale page re-applies nothing ---------------------------------------------------


def test_a_stale_user_page_does_not_set_back_access_changed_meanwhile():
    admin = superuser()
    client = staff_client(admin)
    user = make_user()
    html = client.get(user_url(user)).content.decode()
    for name in ("role", "is_active", "is_superuser", "first_name"):
        assert f'name="initial-{name}"' in html  # what the page showed, posted back
    data = change_form(client, user_url(user), first_name="Hala")  # the page, shown now
    assert "initial-groups" not in data  # none shown: a browser posts no hidden value
    other_admin = superuser()
    support = Group.objects.create(name="support")
    services.user_set_active(actor=other_admin, user=user, active=False)
    services.user_update_by_admin(actor=other_admin, user=user, changes={"role": Role.HELPER})
    services.user_grants_set(actor=other_admin, user=user, changes={"groups": [support]})
    assert client.post(user_url(user), data).status_code == 302
    user.refresh_from_db()
    assert (user.role, user.is_active, user.first_name) == (Role.HELPER, False, "Hala")
    assert list(user.groups.all()) == [support]
    # Only the name is this admin's change: no reactivation, role or group change audited.
    assert list(AuditEvent.objects.filter(actor_id=admin.pk).values_list("action", "data")) == [
        ("user.updated", {"fields": ["first_name"]})
    ]


def test_a_stale_user_page_still_applies_what_was_changed_on_it():
    client = staff_client(superuser())
    user = make_user(first_name="Old")
    data = change_form(client, user_url(user), role=Role.DOCTOR)
    services.user_update_by_admin(actor=superuser(), user=user, changes={"first_name": "New"})
    assert client.post(user_url(user), data).status_code == 302
    user.refresh_from_db()
    assert (user.role, user.first_name) == (Role.DOCTOR, "New")


# --- 5. a one-time password's flag is never cleared here -------------------------------------


def test_must_change_password_is_not_cleared_on_the_admin_site():
    """Whoever opened the account knows its one-time password: clearing the flag would keep
    that password working for good."""
    client = staff_client(superuser())
    user, _password = services.user_create_by_admin(
        admin=superuser(), email="dr.new@example.com", role=Role.DOCTOR
    )
    page = client.get(user_url(user))
    assert "must_change_password" not in page.context["adminform"].form.fields
    data = change_form(client, user_url(user), first_name="Nour")
    data.pop("must_change_password", None)  # unticked, as a browser posts it
    data["initial-must_change_password"] = "True"
    assert client.post(user_url(user), data).status_code == 302
    user.refresh_from_db()
    assert (user.must_change_password, user.first_name) == (True, "Nour")


def test_requiring_a_password_change_is_audited():
    admin = superuser()
    client = staff_client(admin)
    user = make_user()
    data = change_form(client, user_url(user), must_change_password="on")
    assert client.post(user_url(user), data).status_code == 302
    user.refresh_from_db()
    assert user.must_change_password
    event = AuditEvent.objects.get(action="user.password_change_required")
    assert (event.actor_id, event.target_type, event.target_id) == (admin.pk, "user", str(user.pk))


# --- 4. a doctor's profile: only what the page changed, audited --------------------------


def test_a_profile_save_keeps_a_rejection_and_ratings_made_meanwhile(monkeypatch):
    client = staff_client(superuser())
    profile = doctor()
    data = change_form(client, profile_url(profile), designation="Cardiologist")

    def reject_and_rate(obj: DoctorProfile) -> None:
        DoctorProfile.objects.filter(pk=obj.pk).update(
            verification=Verification.REJECTED,
            verification_reason="Licence expired",
            verified_at=None,
            rating_sum=F("rating_sum") + 5,
            rating_count=F("rating_count") + 1,
        )

    _meanwhile(monkeypatch, DoctorProfileAdmin, reject_and_rate)
    assert client.post(profile_url(profile), data).status_code == 302
    profile.refresh_from_db()
    assert (
        profile.designation,
        profile.verification,
        profile.verification_reason,
        profile.rating_sum,
        profile.rating_count,
    ) == ("Cardiologist", Verification.REJECTED, "Licence expired", 5, 1)


def test_a_stale_profile_page_does_not_set_back_the_doctors_edits():
    client = staff_client(superuser())
    profile = doctor(bio_en="Old bio")
    data = change_form(client, profile_url(profile), designation="Cardiologist")
    doctor_services.doctor_profile_update(user=profile.user, changes={"bio_en": "New bio"})
    assert client.post(profile_url(profile), data).status_code == 302
    profile.refresh_from_db()
    assert (profile.designation, profile.bio_en) == ("Cardiologist", "New bio")


def test_profile_edits_on_the_admin_site_are_audited():
    admin = superuser()
    client = staff_client(admin)
    profile = doctor()
    clinic = profile.clinics.get()
    data = change_form(
        client, profile_url(profile), designation="Surgeon", **{"clinics-0-name": "Nile Clinic"}
    )
    assert client.post(profile_url(profile), data).status_code == 302
    event = AuditEvent.objects.get(action="doctor.updated_by_admin")
    assert (event.actor_id, event.target_type, event.target_id) == (
        admin.pk,
        "doctor",
        str(profile.pk),
    )
    assert event.data == {"fields": ["designation"], "clinics_changed": [str(clinic.pk)]}
    unchanged = change_form(client, profile_url(profile))
    assert client.post(profile_url(profile), unchanged).status_code == 302
    assert AuditEvent.objects.filter(action="doctor.updated_by_admin").count() == 1


def test_a_clinic_name_fix_keeps_a_move_made_meanwhile(monkeypatch):
    client = staff_client(superuser())
    profile = doctor()
    clinic = profile.clinics.get()
    data = change_form(client, profile_url(profile), **{"clinics-0-name": "Nile Clinic"})
    original = DoctorProfileAdmin.save_model

    def save_model(self: Any, request: Any, obj: Any, form: Any, change: bool) -> None:
        original(self, request, obj, form, change)
        # The doctor's move commits after the admin site read the clinics.
        Clinic.objects.filter(pk=clinic.pk).update(address="2 Nile St", latitude=30.05)

    monkeypatch.setattr(DoctorProfileAdmin, "save_model", save_model)
    assert client.post(profile_url(profile), data).status_code == 302
    clinic.refresh_from_db()
    assert (clinic.name, clinic.address, clinic.latitude) == ("Nile Clinic", "2 Nile St", 30.05)


# --- 6. an invitation's address is one a doctor can sign up with ----------------------------


def test_an_invitation_address_is_trimmed_lower_cased_and_validated(api):
    headers = bearer(login(api, make_user(role=Role.ADMIN).email)["access"])
    r = post(api, "/api/v1/admin/invitations", {"email": " Only.Me@Example.com "}, **headers)
    assert r.status_code == 201, r.json()
    assert r.json()["email"] == Invitation.objects.get().email == "only.me@example.com"
    for bad in ("not-an-email", "two words@example.com", "a@b"):
        r = post(api, "/api/v1/admin/invitations", {"email": bad}, **headers)
        assert r.status_code == 422, bad
        assert set(r.json()["error"]["fields"]) == {"email"}
    r = post(api, "/api/v1/admin/invitations", {}, **headers)
    assert (r.status_code, r.json()["email"]) == (201, "")
