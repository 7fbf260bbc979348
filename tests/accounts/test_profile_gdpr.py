"""Profiles (``/me``), the personal-data export and account deletion."""

import pytest
from django.db import connection

from accounts.models import PatientProfile, User
from audit.models import AuditEvent
from tests.factories import AUTH, PASSWORD, bearer, login, make_user, post

pytestmark = pytest.mark.django_db


def test_patient_updates_profile_and_date_of_birth_is_encrypted(api):
    user = make_user()
    headers = bearer(login(api, user.email)["access"])
    r = api.patch(
        "/api/v1/me",
        {
            "first_name": "Layla",
            "language": "ar",
            "time_zone": "Africa/Cairo",
            "date_of_birth": "1990-04-12",
            "sex": "female",
            "city": "Cairo",
        },
        content_type="application/json",
        headers=headers,
    )
    assert r.status_code == 200
    body = r.json()
    assert (body["first_name"], body["language"], body["time_zone"]) == (
        "Layla",
        "ar",
        "Africa/Cairo",
    )
    assert body["patient_profile"]["date_of_birth"] == "1990-04-12"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT date_of_birth FROM accounts_patientprofile WHERE user_id = %s", [user.id]
        )
        raw = cursor.fetchone()[0]
    assert "1990" not in raw and raw.startswith("enc1:")


def test_saved_language_is_used_without_accept_language(api):
    user = make_user(language="ar")
    headers = bearer(login(api, user.email)["access"])
    r = api.patch(
        "/api/v1/me",
        {"time_zone": "Nowhere/City"},
        content_type="application/json",
        headers=headers,
    )
    assert r.status_code == 422
    assert any("\u0600" <= ch <= "\u06ff" for ch in r.json()["error"]["message"])
    r = api.patch(
        "/api/v1/me",
        {"time_zone": "Nowhere/City"},
        content_type="application/json",
        headers={**headers, "Accept-Language": "en"},
    )
    assert r.json()["error"]["message"] == "Some of the data sent is not valid."
    # Asking only for languages we do not speak is asking for none: the saved one answers,
    # as on the socket.
    for asked in ("fr", "*", "fr-FR, de;q=0.8"):
        r = api.patch(
            "/api/v1/me",
            {"time_zone": "Nowhere/City"},
            content_type="application/json",
            headers={**headers, "Accept-Language": asked},
        )
        assert any("\u0600" <= ch <= "\u06ff" for ch in r.json()["error"]["message"]), asked


@pytest.mark.parametrize(
    "payload",
    [
        {"date_of_birth": "2999-01-01"},
        {"latitude": 91},
        {"language": "fr"},
        {"sex": "x"},
        {"first_name": "x" * 151},
        {"time_zone": "Mars/Base"},
        {"time_zone": {}},
        {"time_zone": 3},
        {"longitude": False},
        {"date_of_birth": 0},
    ],
)
def test_bad_profile_input_is_422_and_changes_nothing(api, payload):
    user = make_user(first_name="Same")
    headers = bearer(login(api, user.email)["access"])
    r = api.patch("/api/v1/me", payload, content_type="application/json", headers=headers)
    assert r.status_code == 422
    assert set(r.json()["error"]["fields"]) == set(payload)
    user.refresh_from_db()
    assert user.first_name == "Same"


def test_export_has_my_data_and_nothing_of_anyone_else(api):
    me = make_user(first_name="Mona", phone="+201000000001", phone_verified=True)
    other = make_user(first_name="Other", phone="+201000000002", phone_verified=True)
    login(api, other.email)
    headers = bearer(login(api, me.email)["access"])
    api.patch(
        "/api/v1/me",
        {"date_of_birth": "1985-01-02"},
        content_type="application/json",
        headers=headers,
    )
    r = api.get("/api/v1/me/export", headers=headers)
    assert r.status_code == 200
    data = r.json()
    assert data["account"]["email"] == me.email
    assert data["account"]["phone"] == "+201000000001"
    assert data["patient_profile"]["date_of_birth"] == "1985-01-02"
    assert [a["email"] for a in data["email_addresses"]] == [me.email]
    assert {e["action"] for e in data["activity"]} >= {"auth.login"}
    text = r.content.decode()
    assert other.email not in text and str(other.id) not in text and "+201000000002" not in text


def test_deleted_account_cannot_log_in_and_its_pii_is_gone(api):
    user = make_user(
        first_name="Rana", last_name="Said", phone="+201000000003", phone_verified=True
    )
    tokens = login(api, user.email)
    headers = bearer(tokens["access"])
    api.patch(
        "/api/v1/me",
        {"date_of_birth": "1970-05-05", "city": "Giza"},
        content_type="application/json",
        headers=headers,
    )
    wrong = post(api, "/api/v1/me/delete", {"password": "not-my-password"}, **headers)
    assert wrong.status_code == 403
    assert post(api, "/api/v1/me/delete", {"password": PASSWORD}, **headers).status_code == 204

    user.refresh_from_db()
    assert (user.email, user.phone, user.first_name, user.last_name) == (None, None, "", "")
    assert not user.is_active and user.deleted_at is not None
    profile = PatientProfile.objects.get(user=user)
    assert (profile.date_of_birth, profile.city) == (None, "")
    assert post(api, f"{AUTH}/auth/login", {"email": "x", "password": PASSWORD}).status_code == 400
    assert api.get("/api/v1/me", headers=headers).status_code == 401
    assert (
        post(api, f"{AUTH}/tokens/refresh", {"refresh_token": tokens["refresh"]}).status_code == 400
    )
    assert not User.objects.filter(email__iexact="rana@example.com").exists()
    assert AuditEvent.objects.filter(action="user.deleted", target_id=str(user.id)).exists()


def test_malformed_json_on_me_is_422(api):
    user = make_user()
    r = api.patch(
        "/api/v1/me",
        "{oops",
        content_type="application/json",
        headers=bearer(login(api, user.email)["access"]),
    )
    assert r.status_code == 422
    assert r.json()["error"]["fields"] == {"body": "The request body is not valid JSON."}


def test_unknown_fields_and_non_object_bodies_are_refused(api):
    user = make_user(first_name="Same")
    headers = bearer(login(api, user.email)["access"])
    r = api.patch(
        "/api/v1/me",
        {"first_name": "New", "role": "admin"},
        content_type="application/json",
        headers=headers,
    )
    assert r.status_code == 422
    assert "role" in r.json()["error"]["fields"]
    r = api.patch("/api/v1/me", "[null, null]", content_type="application/json", headers=headers)
    assert r.status_code == 422
    user.refresh_from_db()
    assert (user.first_name, user.role) == ("Same", "patient")


def test_time_zones_are_documented_as_an_enum(api):
    spec = api.get("/api/v1/openapi.json").json()
    text = str(spec["components"]["schemas"]["MeIn"])
    assert "Africa/Cairo" in text and "Asia/Riyadh" in text


def test_null_clears_text_and_leaves_choices_alone(api):
    user = make_user(first_name="Old", language="ar")
    headers = bearer(login(api, user.email)["access"])
    r = api.patch(
        "/api/v1/me",
        {"first_name": None, "city": None, "language": None, "time_zone": None},
        content_type="application/json",
        headers=headers,
    )
    assert r.status_code == 200
    assert (r.json()["first_name"], r.json()["language"], r.json()["time_zone"]) == (
        "",
        "ar",
        "UTC",
    )
    assert r.json()["patient_profile"]["city"] == ""


def test_nul_characters_are_refused(api):
    user = make_user()
    headers = bearer(login(api, user.email)["access"])
    r = api.patch(
        "/api/v1/me", {"city": "Cai\u0000ro"}, content_type="application/json", headers=headers
    )
    assert r.status_code == 422
    admin = make_user(role="admin")
    r = api.get("/api/v1/admin/users?q=a%00b", headers=bearer(login(api, admin.email)["access"]))
    assert r.status_code == 422
