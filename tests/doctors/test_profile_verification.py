"""A doctor edits their profile and clinics; staff verify or reject them."""

import re

import pytest
from django.contrib.auth.models import Group, Permission
from django.core import mail

from accounts.models import Role
from audit.models import AuditEvent
from doctors.geocoding import names_key
from doctors.models import Clinic, DoctorProfile
from realtime.models import Delivery, Notification
from tests.doctors.factories import specialty
from tests.factories import bearer, login, make_user, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def doctor_headers(api):
    user = make_user(role=Role.DOCTOR, first_name="Hany", last_name="Fahmy", language="ar")
    return user, bearer(login(api, user.email)["access"])


def test_doctor_edits_profile_and_is_pending_until_verified(api, doctor_headers):
    user, headers = doctor_headers
    specialty()
    r = api.patch(
        "/api/v1/doctor/profile",
        {
            "designation": "Consultant",
            "specialties": ["cardiology"],
            "languages": ["en", "ar"],
            "fee": "250.50",
            "offers_video": True,
        },
        content_type="application/json",
        headers=headers,
    )
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["verification"] == "pending"
    assert body["fee"] == {"amount": "250.50", "currency": "EGP"}
    assert body["languages"] == ["ar", "en"]
    assert set(body["modes"]) == {"in_person", "video"}
    assert api.get("/api/v1/doctors").json()["items"] == []  # not listed while pending


def test_clinic_with_a_pinned_location_is_indexed(api, doctor_headers):
    _, headers = doctor_headers
    r = post(
        api,
        "/api/v1/doctor/clinics",
        {
            "name": "Heart Care",
            "address": "12 Nile St",
            "city": "Cairo",
            "latitude": 30.05,
            "longitude": 31.24,
        },
        **headers,
    )
    assert r.status_code == 201, r.json()
    clinic = Clinic.objects.get()
    assert clinic.time_zone == "Africa/Cairo" and clinic.country == "EG"
    assert clinic.h3_r7 and clinic.h3_r5 and clinic.h3_r3


def test_a_clinic_edit_keeps_what_it_does_not_change(api, doctor_headers):
    _, headers = doctor_headers
    r = post(
        api,
        "/api/v1/doctor/clinics",
        {"name": "C", "address": "1 Nile St", "city": "Giza"},
        **headers,
    )
    assert r.status_code == 201, r.json()
    url = f"/api/v1/doctor/clinics/{r.json()['id']}"

    def patch(body, **extra):
        return api.patch(url, body, content_type="application/json", headers={**headers, **extra})

    # a new address is found in the clinic's city (alone it is nowhere)
    r = patch({"address": "5 Pyramids Rd"})
    assert r.status_code == 200, r.json()
    assert r.json()["city"] == "Giza" and abs(r.json()["latitude"] - 30.01) < 0.05
    # moving the pin keeps the city the doctor gave
    r = patch({"latitude": 30.02, "longitude": 31.2})
    assert r.status_code == 200, r.json()
    assert (r.json()["city"], r.json()["latitude"], r.json()["longitude"]) == ("Giza", 30.02, 31.2)
    # half a pin is refused, not silently replaced by the address's location
    r = patch({"latitude": 29.5}, **{"Accept-Language": "ar"})
    assert r.status_code == 422 and "longitude" in r.json()["error"]["fields"]
    assert any("\u0600" <= ch <= "\u06ff" for ch in r.json()["error"]["fields"]["longitude"])
    clinic = Clinic.objects.get()
    assert (clinic.latitude, clinic.longitude) == (30.02, 31.2)
    r = post(
        api,
        "/api/v1/doctor/clinics",
        {"name": "D", "address": "1 St", "longitude": 31.2},
        **headers,
    )
    assert r.status_code == 422 and "latitude" in r.json()["error"]["fields"]


def test_clinic_address_is_geocoded_in_arabic(api, doctor_headers):
    _, headers = doctor_headers
    r = post(
        api,
        "/api/v1/doctor/clinics",
        {"name": "عيادة", "address": "شارع النيل، القاهرة"},
        **headers,
    )
    assert r.status_code == 201, r.json()
    assert r.json()["time_zone"] == "Africa/Cairo"
    assert abs(r.json()["latitude"] - 30.06) < 0.2
    # found by the city's English name too (worked out when the clinic is saved)
    clinic = Clinic.objects.get(id=r.json()["id"])
    assert clinic.city_names == names_key(["Cairo", "القاهرة"]), clinic.city_names


def test_unknown_address_is_422_place_not_found(api, doctor_headers):
    _, headers = doctor_headers
    r = post(
        api,
        "/api/v1/doctor/clinics",
        {"name": "X", "address": "Qwxzyville Zzzz"},
        **{**headers, "Accept-Language": "en"},
    )
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "directory.place_not_found"
    assert "address" in r.json()["error"]["fields"]  # the field to correct


def test_patients_cannot_use_doctor_endpoints(api):
    patient = make_user()
    headers = bearer(login(api, patient.email)["access"])
    assert api.get("/api/v1/doctor/profile", headers=headers).status_code == 403


def test_admin_verifies_audited_and_doctor_is_told(
    api, doctor_headers, django_capture_on_commit_callbacks
):
    user, headers = doctor_headers
    api.get("/api/v1/doctor/profile", headers=headers)
    post(
        api,
        "/api/v1/doctor/clinics",
        {"name": "C", "address": "1 St", "latitude": 30.05, "longitude": 31.24},
        **headers,
    )
    admin = make_user(role=Role.ADMIN)
    admin_headers = bearer(login(api, admin.email)["access"])
    queue = api.get("/api/v1/admin/verifications", headers=admin_headers).json()["items"]
    profile = DoctorProfile.objects.get(user=user)
    assert [d["id"] for d in queue] == [str(profile.id)]
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        r = post(
            api,
            f"/api/v1/admin/verifications/{profile.id}",
            {"decision": "verified"},
            **admin_headers,
        )
    assert r.status_code == 200 and r.json()["verification"] == "verified"
    assert AuditEvent.objects.filter(action="doctor.verified", target_id=str(profile.id)).exists()
    # told through the notification service: in the app, and by e-mail off the request path
    told = Notification.objects.get(user=user, kind="doctor.verification")
    assert told.data["decision"] == "verified"
    assert any("\u0600" <= ch <= "\u06ff" for ch in told.title)  # the doctor's language
    assert list(Delivery.objects.filter(notification=told).values_list("channel", flat=True)) == [
        "email"
    ]
    assert [d["id"] for d in api.get("/api/v1/doctors").json()["items"]] == [str(profile.id)]

    with django_capture_on_commit_callbacks(execute=True):
        r = post(
            api,
            f"/api/v1/admin/verifications/{profile.id}",
            {"decision": "rejected", "reason": "Licence expired"},
            **admin_headers,
        )
    assert r.json()["verification_reason"] == "Licence expired"
    assert api.get("/api/v1/doctors").json()["items"] == []
    # "pending" is not a decision; a rejected doctor who corrects the profile is looked at again
    r = post(
        api, f"/api/v1/admin/verifications/{profile.id}", {"decision": "pending"}, **admin_headers
    )
    assert r.status_code == 422
    r = api.patch(
        "/api/v1/doctor/profile",
        {"designation": "Consultant cardiologist"},
        content_type="application/json",
        headers=headers,
    )
    assert r.json()["verification"] == "pending"
    queue = api.get("/api/v1/admin/verifications", headers=admin_headers).json()["items"]
    assert [d["id"] for d in queue] == [str(profile.id)]
    # verifying a verified doctor again changes nothing and tells nobody
    with django_capture_on_commit_callbacks(execute=True):
        post(
            api,
            f"/api/v1/admin/verifications/{profile.id}",
            {"decision": "verified"},
            **admin_headers,
        )
    first = DoctorProfile.objects.get(pk=profile.pk).verified_at
    with django_capture_on_commit_callbacks(execute=True):
        post(
            api,
            f"/api/v1/admin/verifications/{profile.id}",
            {"decision": "verified"},
            **admin_headers,
        )
    assert DoctorProfile.objects.get(pk=profile.pk).verified_at == first
    assert Notification.objects.filter(user=user, kind="doctor.verification").count() == 3


def test_helper_needs_the_permission_to_verify(api, doctor_headers):
    user, headers = doctor_headers
    api.get("/api/v1/doctor/profile", headers=headers)
    profile = DoctorProfile.objects.get(user=user)
    helper = make_user(role=Role.HELPER)
    helper_headers = bearer(login(api, helper.email)["access"])
    assert (
        post(
            api,
            f"/api/v1/admin/verifications/{profile.id}",
            {"decision": "verified"},
            **helper_headers,
        ).status_code
        == 403
    )
    group = Group.objects.create(name="verifiers")
    group.permissions.add(Permission.objects.get(codename="change_doctorprofile"))
    helper.groups.add(group)
    assert (
        post(
            api,
            f"/api/v1/admin/verifications/{profile.id}",
            {"decision": "verified"},
            **helper_headers,
        ).status_code
        == 200
    )


def test_a_fee_in_a_currency_with_three_or_no_decimals(api, doctor_headers):
    _, headers = doctor_headers

    def patch(body):
        return api.patch(
            "/api/v1/doctor/profile", body, content_type="application/json", headers=headers
        )

    r = patch({"fee": "12.250", "currency": "KWD"})
    assert r.status_code == 200 and r.json()["fee"] == {"amount": "12.250", "currency": "KWD"}
    r = patch({"currency": "USD"})  # a new currency keeps the amount
    assert r.json()["fee"] == {"amount": "12.25", "currency": "USD"}
    for body, field in (
        ({"fee": "3000.5", "currency": "JPY"}, "fee"),
        ({"fee": "10", "currency": "ZZZ"}, "currency"),
        ({"currency": "JPY"}, "fee"),  # 12.25 has no yen amount
    ):
        r = patch(body)
        assert r.status_code == 422 and field in r.json()["error"]["fields"], (body, r.json())
    assert patch({}).json()["fee"] == {"amount": "12.25", "currency": "USD"}


def test_bad_profile_input(api, doctor_headers):
    _, headers = doctor_headers
    for payload in (
        {"specialties": ["astrology"]},
        {"fee": "-1"},
        {"currency": "egp"},
        {"years_experience": True},
        {"unknown": 1},
        {"offers_chat": 0},
        {"languages": ["english"]},
    ):
        r = api.patch(
            "/api/v1/doctor/profile", payload, content_type="application/json", headers=headers
        )
        assert r.status_code == 422, payload


def test_verification_from_the_admin_site_is_audited(django_capture_on_commit_callbacks):
    from django.contrib.admin.sites import site
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.test import RequestFactory

    from doctors.admin import DoctorProfileAdmin

    admin_user = make_user(role=Role.ADMIN)
    doctor_user = make_user(role=Role.DOCTOR)
    profile = DoctorProfile.objects.create(user=doctor_user)
    request = RequestFactory().post("/admin/doctors/doctorprofile/")
    request.user = admin_user
    request.session = {}  # type: ignore[assignment]
    request._messages = FallbackStorage(request)  # type: ignore[attr-defined]
    with django_capture_on_commit_callbacks(execute=True):
        DoctorProfileAdmin(DoctorProfile, site).verify(
            request, DoctorProfile.objects.filter(pk=profile.pk)
        )
    profile.refresh_from_db()
    assert profile.verification == "verified"
    event = AuditEvent.objects.get(action="doctor.verified")
    assert str(event.actor_id) == str(admin_user.id)


def test_the_admin_site_invalidates_the_directory_and_adds_no_clinic(
    api, django_capture_on_commit_callbacks
):
    from django.test import Client

    from accounts.models import User
    from doctors.models import Specialty
    from doctors.services import directory_version
    from tests.accounts.test_staff_2fa import PASSWORD, enrol
    from tests.doctors.factories import doctor

    spec = Specialty.objects.create(code="sleep", name_en="Sleep", name_ar="النوم")
    listed = doctor(specialties=(spec,))
    assert api.get("/api/v1/doctors?specialty=sleep").json()["items"][0]["specialties"] == [
        {"code": "sleep", "name": "Sleep"}
    ]
    staff = Client()
    enrol(staff, User.objects.create_superuser("dir-admin@example.com", PASSWORD))
    before = directory_version()
    with django_capture_on_commit_callbacks(execute=True):
        r = staff.post(
            f"/admin/doctors/specialty/{spec.pk}/change/",
            {"code": "sleep", "name_en": "Sleep medicine", "name_ar": "طب النوم"},
        )
    assert r.status_code == 302, re.findall(r"errorlist.{0,300}", r.content.decode())
    assert directory_version() > before
    card = api.get("/api/v1/doctors?specialty=sleep").json()["items"][0]
    assert card["specialties"] == [{"code": "sleep", "name": "Sleep medicine"}]
    # the clinic inline: no clinic is added here (the API geocodes and indexes them)
    page = staff.get(f"/admin/doctors/doctorprofile/{listed.pk}/change/").content.decode()
    assert 'clinics-MAX_NUM_FORMS" value="0"' in page  # Django's form of "no adding"
    assert 'name="clinics-0-address"' not in page and 'name="clinics-0-name"' in page


def test_a_doctor_deactivated_on_the_admin_site_leaves_the_cached_directory_at_once(
    api, django_capture_on_commit_callbacks
):
    """The admin site saves the user itself (no service of ours): the directory learns of
    it from the save, as from the API's."""
    from django.test import Client

    from accounts.models import User
    from tests.accounts.test_staff_2fa import PASSWORD, enrol
    from tests.doctors.factories import doctor

    listed = doctor()
    assert [i["id"] for i in api.get("/api/v1/doctors").json()["items"]] == [str(listed.id)]
    assert api.get(f"/api/v1/doctors/{listed.id}").status_code == 200  # both cached now
    staff = Client()
    enrol(staff, User.objects.create_superuser("deactivating-admin@example.com", PASSWORD))
    u = listed.user
    form = {
        "email": u.email,
        "phone": "",
        "first_name": u.first_name,
        "last_name": u.last_name,
        "language": u.language,
        "time_zone": u.time_zone,
        "role": u.role,
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": "2024-01-01",
        "date_joined_1": "00:00:00",
    }  # "is_active" left out: the box unticked
    with django_capture_on_commit_callbacks(execute=True):
        r = staff.post(f"/admin/accounts/user/{u.pk}/change/", form)
    assert r.status_code == 302, re.findall(r"errorlist.{0,300}", r.content.decode())
    u.refresh_from_db()
    assert not u.is_active
    assert api.get("/api/v1/doctors").json()["items"] == []
    assert api.get(f"/api/v1/doctors/{listed.id}").status_code == 404


def test_an_account_no_longer_a_doctor_is_neither_listed_nor_bookable(
    api, django_capture_on_commit_callbacks
):
    from accounts.models import Role
    from bookings.selectors import bookable_doctor
    from tests.doctors.factories import doctor

    listed = doctor()
    assert bookable_doctor(listed.id) is not None
    assert len(api.get("/api/v1/doctors").json()["items"]) == 1  # cached now
    admin = make_user(role=Role.ADMIN)
    headers = bearer(login(api, admin.email)["access"])
    with django_capture_on_commit_callbacks(execute=True):
        r = api.patch(
            f"/api/v1/admin/users/{listed.user.pk}",
            {"role": "patient"},
            content_type="application/json",
            headers=headers,
        )
    assert r.status_code == 200, r.content
    assert api.get("/api/v1/doctors").json()["items"] == []
    assert api.get(f"/api/v1/doctors/{listed.id}").status_code == 404
    assert bookable_doctor(listed.id) is None
    # and back: listed again
    with django_capture_on_commit_callbacks(execute=True):
        api.patch(
            f"/api/v1/admin/users/{listed.user.pk}",
            {"role": "doctor"},
            content_type="application/json",
            headers=headers,
        )
    assert [i["id"] for i in api.get("/api/v1/doctors").json()["items"]] == [str(listed.id)]


def test_a_rejection_from_the_admin_site_carries_its_reason(django_capture_on_commit_callbacks):
    """The action bar has a reason field: a rejection without one is refused (the doctor is
    told why), one with it is audited and told with it."""
    from django.contrib.admin.sites import site
    from django.contrib.messages.storage.fallback import FallbackStorage
    from django.test import RequestFactory

    from doctors.admin import DoctorProfileAdmin

    admin_user = make_user(role=Role.ADMIN)
    profile = DoctorProfile.objects.create(user=make_user(role=Role.DOCTOR))
    for reason in ("  ", "Licence number does not match"):
        request = RequestFactory().post("/admin/doctors/doctorprofile/", {"reason": reason})
        request.user = admin_user
        request.session = {}  # type: ignore[assignment]
        request._messages = FallbackStorage(request)  # type: ignore[attr-defined]
        with django_capture_on_commit_callbacks(execute=True):
            DoctorProfileAdmin(DoctorProfile, site).reject(
                request, DoctorProfile.objects.filter(pk=profile.pk)
            )
        profile.refresh_from_db()
        if not reason.strip():
            assert profile.verification == "pending"
            assert not AuditEvent.objects.filter(action="doctor.rejected").exists()
    assert (profile.verification, profile.verification_reason) == ("rejected", reason)
    event = AuditEvent.objects.get(action="doctor.rejected")
    assert event.data["reason"] == reason


def test_a_rejection_through_the_api_needs_a_reason(api):
    admin_user = make_user(role=Role.ADMIN)
    profile = DoctorProfile.objects.create(user=make_user(role=Role.DOCTOR))
    headers = bearer(login(api, admin_user.email)["access"])
    r = post(
        api, f"/api/v1/admin/verifications/{profile.id}", {"decision": "rejected", "reason": " "},
        **headers, **{"Accept-Language": "ar"},
    )  # fmt: skip
    assert r.status_code == 422 and "السبب" in r.json()["error"]["fields"]["reason"]
    profile.refresh_from_db()
    assert profile.verification == "pending"


def test_a_clinic_sent_back_whole_keeps_its_pin(api, doctor_headers):
    """A client that sends the whole form back to rename a clinic moves nothing: a pin
    placed by hand is not replaced by the geocoder's idea of the same address."""
    _, headers = doctor_headers
    form = {"name": "C", "address": "12 Nile St", "city": "Giza"}
    r = post(
        api,
        "/api/v1/doctor/clinics",
        {**form, "latitude": 30.0131, "longitude": 31.2089},
        **headers,
    )
    assert r.status_code == 201, r.json()
    url = f"/api/v1/doctor/clinics/{r.json()['id']}"
    r = api.patch(
        url, {**form, "name": "C renamed"}, content_type="application/json", headers=headers
    )
    assert r.status_code == 200, r.json()
    assert (r.json()["name"], r.json()["latitude"], r.json()["longitude"]) == (
        "C renamed",
        30.0131,
        31.2089,
    )
    # a new address is still located again
    r = api.patch(
        url, {**form, "address": "5 Pyramids Rd"}, content_type="application/json", headers=headers
    )
    assert r.status_code == 200, r.json()
    assert r.json()["latitude"] != 30.0131


def test_a_pinned_clinic_is_named_in_its_doctors_language(api, doctor_headers):
    _, headers = doctor_headers  # an Arabic-speaking doctor
    r = post(
        api,
        "/api/v1/doctor/clinics",
        {"name": "C", "address": "12 Nile St", "latitude": 30.0131, "longitude": 31.2089},
        **headers,
    )
    assert r.status_code == 201, r.json()
    assert r.json()["city"] == "الجيزة"
    assert "giza" in Clinic.objects.get().city_names  # found by its English name too


def test_a_clinic_that_is_not_ones_own_is_a_missing_clinic(api, doctor_headers):
    _, headers = doctor_headers
    other = make_user(role=Role.DOCTOR)
    r = post(
        api,
        "/api/v1/doctor/clinics",
        {"name": "Theirs", "address": "1 St", "latitude": 30.05, "longitude": 31.24},
        **bearer(login(api, other.email)["access"]),
    )
    assert r.status_code == 201, r.json()
    for url in (f"/api/v1/doctor/clinics/{r.json()['id']}", "/api/v1/doctor/clinics/" + "0" * 32):
        r = api.patch(url, {"name": "Mine"}, content_type="application/json", headers=headers)
        assert r.status_code == 404 and r.json()["error"]["code"] == "directory.clinic_not_found"
        assert r.json()["error"]["message"] == "لم نعثر على هذه العيادة."
        r = api.delete(url, headers=headers)
        assert r.status_code == 404 and r.json()["error"]["code"] == "directory.clinic_not_found"
    assert Clinic.objects.get().name == "Theirs"


@pytest.mark.parametrize("change", ["create", "update", "delete"])
def test_a_rejected_doctor_who_corrects_a_clinic_is_looked_at_again(api, doctor_headers, change):
    user, headers = doctor_headers
    pin = {"latitude": 30.05, "longitude": 31.24}
    r = post(api, "/api/v1/doctor/clinics", {"name": "C", "address": "1 St", **pin}, **headers)
    assert r.status_code == 201, r.json()
    url = f"/api/v1/doctor/clinics/{r.json()['id']}"
    DoctorProfile.objects.filter(user=user).update(
        verification="rejected", verification_reason="No clinic address"
    )
    if change == "create":
        r = post(api, "/api/v1/doctor/clinics", {"name": "D", "address": "2 St", **pin}, **headers)
        assert r.status_code == 201, r.json()
    elif change == "update":
        r = api.patch(url, {"address": "3 St"}, content_type="application/json", headers=headers)
        assert r.status_code == 200, r.json()
    else:
        assert api.delete(url, headers=headers).status_code == 204
    assert DoctorProfile.objects.get(user=user).verification == "pending"
