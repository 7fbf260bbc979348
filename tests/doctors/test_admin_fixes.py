"""Doctors and specialties on the admin site: deletions and changes audited or refused,
erased accounts not written back, prices left to their doctors."""

from __future__ import annotations

import pytest
from django.utils import translation

from accounts.services import account_delete
from audit.models import AuditEvent
from doctors import services
from doctors.models import Clinic, DoctorProfile, Specialty
from tests.accounts.admin_site import change_form, staff_client, superuser
from tests.doctors.factories import clinic_at, doctor, specialty

pytestmark = pytest.mark.django_db

PROFILES = "/admin/doctors/doctorprofile/"
SPECIALTIES = "/admin/doctors/specialty/"


def change_url(profile: DoctorProfile) -> str:
    return f"{PROFILES}{profile.pk}/change/"


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("id"))


@pytest.fixture
def directory_changes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(services, "directory_changed", lambda: calls.append(1))
    return calls


# --- deletions (defect 3) -----------------------------------------------------------------


def test_a_doctor_profile_cannot_be_deleted_on_the_admin_site():
    client = staff_client(superuser())
    profile = doctor()
    assert client.get(f"{PROFILES}{profile.pk}/delete/").status_code == 403
    assert client.post(f"{PROFILES}{profile.pk}/delete/", {"post": "yes"}).status_code == 403
    page = client.get(PROFILES)
    actions = [name for name, _label in page.context["action_form"].fields["action"].choices]
    assert "delete_selected" not in actions
    assert "verify" in actions and "reject" in actions  # rejection is the way out
    client.post(
        PROFILES, {"action": "delete_selected", "_selected_action": [profile.pk], "post": "yes"}
    )
    assert DoctorProfile.objects.filter(pk=profile.pk).exists()


def test_changing_a_specialty_is_audited_and_listed_at_once(directory_changes):
    actor = superuser()
    client = staff_client(actor)
    cardio = specialty()
    r = client.post(
        f"{SPECIALTIES}{cardio.pk}/change/",
        {"code": "cardiology", "name_en": "Heart", "name_ar": cardio.name_ar},
    )
    assert r.status_code == 302
    [event] = events("specialty.changed")
    assert (event.actor_id, event.target_type, event.target_id) == (
        actor.pk,
        "specialty",
        str(cardio.pk),
    )
    assert event.data == {"slug": "cardiology", "fields": ["name_en"]}
    assert directory_changes


def test_deleting_specialties_is_audited_and_listed_at_once(directory_changes):
    actor = superuser()
    client = staff_client(actor)
    cardio, derma = specialty(), specialty("dermatology", "Dermatology", "الجلدية")
    doctor(specialties=(cardio,))
    r = client.post(f"{SPECIALTIES}{cardio.pk}/delete/", {"post": "yes"})
    assert r.status_code == 302
    assert not Specialty.objects.filter(pk=cardio.pk).exists()
    [event] = events("specialty.deleted")
    assert (event.actor_id, event.target_id) == (actor.pk, str(cardio.pk))
    assert event.data == {
        "slug": "cardiology",
        "name_en": "Cardiology",
        "name_ar": "أمراض القلب",
        "doctors": 1,
    }
    assert len(directory_changes) == 1

    r = client.post(
        SPECIALTIES,
        {"action": "delete_selected", "_selected_action": [derma.pk], "post": "yes"},
    )
    assert r.status_code == 302
    assert not Specialty.objects.filter(pk=derma.pk).exists()
    assert [e.data["slug"] for e in events("specialty.deleted")] == ["cardiology", "dermatology"]
    assert len(directory_changes) == 2


# --- a page read before an erasure, posted after it (defect 4) ----------------------------


def test_a_profile_page_posted_after_the_accounts_erasure_writes_nothing_back():
    client = staff_client(superuser())
    profile = doctor(designation="Consultant", bio_en="Dr Omar, Cairo")
    data = change_form(client, change_url(profile), designation="Consultant cardiologist")
    account_delete(user=profile.user)
    r = client.post(change_url(profile), data)
    assert r.status_code == 200
    [error] = r.context["adminform"].form.non_field_errors()
    assert "erased" in error
    with translation.override("ar"):
        assert "حُذف هذا الحساب" in str(r.context["adminform"].form.non_field_errors()[0])
    profile.refresh_from_db()
    assert (profile.designation, profile.bio_en) == ("", "")
    assert not events("doctor.updated_by_admin")


def test_a_clinic_renamed_on_a_page_posted_after_the_erasure_is_refused():
    client = staff_client(superuser())
    profile = doctor()
    clinic = Clinic.objects.get(doctor=profile)
    page = client.get(change_url(profile))
    prefix = page.context["inline_admin_formsets"][0].formset.prefix
    data = change_form(client, change_url(profile), **{f"{prefix}-0-name": "Dr Omar's rooms"})
    account_delete(user=profile.user)
    r = client.post(change_url(profile), data)
    assert r.status_code == 200
    formset = r.context["inline_admin_formsets"][0].formset
    assert "erased" in str(formset.non_form_errors())
    clinic.refresh_from_db()
    assert clinic.name == ""


def test_a_profile_of_a_live_account_is_still_changed():
    client = staff_client(superuser())
    profile = doctor(designation="Consultant")
    data = change_form(client, change_url(profile), designation="Professor")
    assert client.post(change_url(profile), data).status_code == 302
    profile.refresh_from_db()
    assert profile.designation == "Professor"


# --- prices are the doctor's (defect 6) ---------------------------------------------------


def test_fee_and_currency_cannot_be_changed_on_the_admin_site():
    client = staff_client(superuser())
    profile = doctor(fee_minor=25050, currency="EGP")
    page = client.get(change_url(profile))
    fields = page.context["adminform"].form.fields
    assert "currency" not in fields and "fee_minor" not in fields
    data = change_form(client, change_url(profile))
    data |= {"currency": "JPY", "fee_minor": "1"}
    assert client.post(change_url(profile), data).status_code == 302
    profile.refresh_from_db()
    assert (profile.fee_minor, profile.currency) == (25050, "EGP")


def test_a_clinic_booked_after_its_removal_was_checked_stays_with_a_message(monkeypatch):
    """The admin page checks a clinic it removes for upcoming appointments when the form is
    validated; one booked between that check and the save made the save fail with a 500.
    Now the clinic stays, the rest of the page is saved and the admin is told why."""
    from datetime import time

    from bookings import services as bookings
    from bookings.models import BookingPolicy
    from doctors.admin import ClinicFormSet
    from tests.bookings.conftest import next_slot, weekly_hours
    from tests.factories import make_user

    client = staff_client(superuser())
    profile = doctor(designation="Consultant")
    weekly_hours(profile, time(9), time(13))
    BookingPolicy.objects.create(doctor=profile, min_notice_minutes=0)
    clinic = Clinic.objects.get(doctor=profile)
    other = clinic_at(profile, 30.0, 31.0)  # removed in the same save, and not booked
    page = client.get(change_url(profile))
    prefix = page.context["inline_admin_formsets"][0].formset.prefix
    data = change_form(client, change_url(profile), designation="Professor")
    data[f"{prefix}-0-DELETE"] = data[f"{prefix}-1-DELETE"] = "on"
    checked = ClinicFormSet.clean

    def booked_right_after_the_check(self: ClinicFormSet) -> None:
        checked(self)
        bookings.appointment_book(
            patient=make_user(),
            doctor_id=profile.id,
            start=next_slot(),
            mode="in_person",
            clinic_id=clinic.id,
        )

    monkeypatch.setattr(ClinicFormSet, "clean", booked_right_after_the_check)
    with translation.override("ar"):
        r = client.post(change_url(profile), data, follow=True, HTTP_ACCEPT_LANGUAGE="ar")
    assert r.status_code == 200
    shown = [str(m) for m in r.context["messages"]]
    assert any("مواعيد قادمة" in m or "appointments" in m for m in shown), shown
    assert Clinic.objects.filter(id=clinic.id).exists()
    assert not Clinic.objects.filter(id=other.id).exists()  # the other one is still removed
    profile.refresh_from_db()
    assert profile.designation == "Professor"
    [event] = events("doctor.updated_by_admin")
    assert event.data["clinics_deleted"] == [str(other.id)]


def test_verification_messages_on_the_admin_site_are_translated():
    client = staff_client(superuser())
    pending = [doctor(verified=False) for _ in range(2)]
    r = client.post(
        PROFILES,
        {"action": "verify", "_selected_action": [p.pk for p in pending], "reason": ""},
        follow=True,
        HTTP_ACCEPT_LANGUAGE="ar",
    )
    assert r.status_code == 200
    assert "تم توثيق طبيبين." in [str(m) for m in r.context["messages"]]


def test_an_erased_doctors_clinic_names_leave_the_admin_log():
    """The profile's page names the clinics it changed ("Dr Rana Haddad Clinic (Cairo)"):
    the erasure blanks the clinic, and its name in the admin's change log goes too."""
    from django.contrib.admin.models import LogEntry

    client = staff_client(superuser())
    profile, bystander = doctor(), doctor()
    for who, name in ((profile, "Dr Rana Haddad Clinic"), (bystander, "Dr Kept Clinic")):
        data = change_form(client, change_url(who), **{"clinics-0-name": name})
        assert client.post(change_url(who), data).status_code == 302
    account_delete(user=profile.user)
    rows = list(LogEntry.objects.values_list("object_repr", "change_message"))
    assert len(rows) == 2
    assert not any("Rana Haddad" in r or "Rana Haddad" in m for r, m in rows), rows
    assert any("Dr Kept Clinic" in m for _r, m in rows)  # another doctor's entry is theirs
    [entry] = LogEntry.objects.filter(object_id=str(profile.pk))
    assert entry.get_change_message()  # what was done stays: a clinic changed
