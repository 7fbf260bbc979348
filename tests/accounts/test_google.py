"""Google ID-token sign-in (the mobile app flow of allauth headless), against a local stub of
Google's certificate endpoint and ID tokens signed here with a key of our own."""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from allauth.socialaccount.providers.google import views as google_views
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from django.test import Client

from accounts.models import Role, User
from audit.models import AuditEvent
from tests.accounts.stubs import Recorded, Reply, StubServer

pytestmark = pytest.mark.django_db

TOKEN_URL = "/_allauth/app/v1/auth/provider/token"
CLIENT_ID = "1234567890-telemedtest.apps.googleusercontent.com"
CERTS_PATH = "/oauth2/v1/certs"
KID = "test-kid-1"
ISSUER = "https://accounts.google.com"


def _key_and_cert() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "federated-signon.system.gserviceaccount.com")]
    )
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    return key, cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture(scope="module")
def google_key() -> tuple[rsa.RSAPrivateKey, str]:
    return _key_and_cert()


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return _key_and_cert()[0]


@pytest.fixture
def google_certs(
    google_key: tuple[rsa.RSAPrivateKey, str], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> Iterator[StubServer]:
    """Google's v1 certs endpoint ({kid: PEM X.509 certificate}) on a local port, and the Google
    app configured through settings.

    allauth reads ``SOCIALACCOUNT_PROVIDERS["google"]["CERTS_URL"]`` once, when
    ``allauth.socialaccount.providers.google.views`` is imported, into the module constant
    ``CERTS_URL`` which ``_verify_and_decode`` reads on every call. A port chosen at test time
    can only reach it through that constant (configuration, not our code); the apps list is
    read from settings on each request, so it is overridden there."""
    _, cert_pem = google_key

    def respond(request: Recorded) -> Reply:
        if request.method == "GET" and request.path == CERTS_PATH:
            return Reply.json(200, {KID: cert_pem})
        return Reply(404)

    with StubServer(respond) as stub:
        url = stub.base_url + CERTS_PATH
        google = {
            **settings.SOCIALACCOUNT_PROVIDERS["google"],
            "APPS": [{"client_id": CLIENT_ID, "secret": ""}],
            "CERTS_URL": url,
        }
        settings.SOCIALACCOUNT_PROVIDERS = {**settings.SOCIALACCOUNT_PROVIDERS, "google": google}
        monkeypatch.setattr(google_views, "CERTS_URL", url)
        yield stub


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "azp": CLIENT_ID,
        "aud": CLIENT_ID,
        "sub": "109876543210987654321",
        "email": "layla@example.com",
        "email_verified": True,
        "name": "Layla Hassan",
        "given_name": "Layla",
        "family_name": "Hassan",
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def _id_token(key: rsa.RSAPrivateKey, kid: str = KID, **overrides: Any) -> str:
    return jwt.encode(_claims(**overrides), key, algorithm="RS256", headers={"kid": kid})


def _sign_in(api: Client, id_token: str, client_id: str = CLIENT_ID) -> Any:
    return api.post(
        TOKEN_URL,
        {
            "provider": "google",
            "process": "login",
            "token": {"client_id": client_id, "id_token": id_token},
        },
        content_type="application/json",
    )


def _me(api: Client, access_token: str) -> Any:
    return api.get("/api/v1/me", headers={"Authorization": f"Bearer {access_token}"})


def _assert_refused(response: Any, status: int = 400) -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert "access_token" not in body.get("meta", {})
    assert "refresh_token" not in body.get("meta", {})


def test_sign_in_with_google_id_token_creates_patient_and_returns_tokens(
    api: Client, google_certs: StubServer, google_key: tuple[rsa.RSAPrivateKey, str]
) -> None:
    response = _sign_in(api, _id_token(google_key[0]))

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["data"]["user"]["email"] == "layla@example.com"
    assert body["meta"]["is_authenticated"] is True
    assert isinstance(body["meta"]["access_token"], str)
    assert isinstance(body["meta"]["refresh_token"], str)
    # The signature was checked against the keys our stub served.
    assert [(r.method, r.path) for r in google_certs.requests] == [("GET", CERTS_PATH)]

    me = _me(api, body["meta"]["access_token"])
    assert me.status_code == 200, me.content
    assert me.json()["email"] == "layla@example.com"
    assert me.json()["role"] == "patient"
    assert me.json()["first_name"] == "Layla"
    assert me.json()["last_name"] == "Hassan"

    user = User.objects.get(email="layla@example.com")
    assert str(user.id) == me.json()["id"]
    assert user.role == Role.PATIENT
    assert user.has_usable_password() is False
    account = SocialAccount.objects.get(user=user)
    assert (account.provider, account.uid) == ("google", "109876543210987654321")
    assert (
        EmailAddress.objects.filter(
            user=user, email="layla@example.com", verified=True, primary=True
        ).count()
        == 1
    )


def test_second_sign_in_with_same_subject_logs_into_same_user(
    api: Client, google_certs: StubServer, google_key: tuple[rsa.RSAPrivateKey, str]
) -> None:
    first = _sign_in(api, _id_token(google_key[0]))
    assert first.status_code == 200, first.content
    first_id = _me(api, first.json()["meta"]["access_token"]).json()["id"]

    second = _sign_in(Client(), _id_token(google_key[0], iat=int(time.time()) - 5))
    assert second.status_code == 200, second.content
    assert second.json()["meta"]["access_token"] != first.json()["meta"]["access_token"]
    assert _me(api, second.json()["meta"]["access_token"]).json()["id"] == first_id

    assert User.objects.count() == 1
    assert SocialAccount.objects.filter(provider="google", uid="109876543210987654321").count() == 1


def test_google_sign_in_connects_existing_password_account_with_same_verified_email(
    api: Client, google_certs: StubServer, google_key: tuple[rsa.RSAPrivateKey, str]
) -> None:
    existing = User.objects.create_user(
        "layla@example.com", "Very-secret-pw-123", first_name="Layla"
    )
    EmailAddress.objects.create(
        user=existing, email="layla@example.com", verified=True, primary=True
    )

    response = _sign_in(api, _id_token(google_key[0]))

    assert response.status_code == 200, response.content
    me = _me(api, response.json()["meta"]["access_token"])
    assert me.json()["id"] == str(existing.id)
    assert User.objects.count() == 1
    account = SocialAccount.objects.get(provider="google")
    assert account.user_id == existing.id
    assert account.uid == "109876543210987654321"
    existing.refresh_from_db()
    assert existing.check_password("Very-secret-pw-123") is True


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"aud": "someone-else.apps.googleusercontent.com"}, id="wrong-audience"),
        pytest.param(
            {"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600}, id="expired"
        ),
        pytest.param({"iss": "https://evil.example.com"}, id="wrong-issuer"),
    ],
)
def test_google_token_with_bad_claims_is_refused(
    api: Client,
    google_certs: StubServer,
    google_key: tuple[rsa.RSAPrivateKey, str],
    overrides: dict[str, Any],
) -> None:
    response = _sign_in(api, _id_token(google_key[0], **overrides))

    _assert_refused(response)
    assert response.json()["errors"][0]["code"] == "invalid_token"
    assert [r.path for r in google_certs.requests] == [CERTS_PATH]
    assert User.objects.count() == 0
    assert SocialAccount.objects.count() == 0


def test_google_token_signed_by_another_key_is_refused(
    api: Client, google_certs: StubServer, other_key: rsa.RSAPrivateKey
) -> None:
    response = _sign_in(api, _id_token(other_key))

    _assert_refused(response)
    assert response.json()["errors"][0]["code"] == "invalid_token"
    assert User.objects.count() == 0


def test_google_token_with_unknown_key_id_is_refused(
    api: Client, google_certs: StubServer, google_key: tuple[rsa.RSAPrivateKey, str]
) -> None:
    response = _sign_in(api, _id_token(google_key[0], kid="not-a-google-kid"))

    _assert_refused(response)
    assert response.json()["errors"][0]["code"] == "invalid_token"
    assert User.objects.count() == 0


def test_google_token_with_tampered_payload_is_refused(
    api: Client, google_certs: StubServer, google_key: tuple[rsa.RSAPrivateKey, str]
) -> None:
    header, _payload, signature = _id_token(google_key[0]).split(".")
    forged = _claims(email="admin@telemed.example", sub="1")
    payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()

    response = _sign_in(api, f"{header}.{payload}.{signature}")

    _assert_refused(response)
    assert response.json()["errors"][0]["code"] == "invalid_token"
    assert User.objects.count() == 0


def test_google_token_for_unconfigured_client_id_is_refused(
    api: Client, google_certs: StubServer, google_key: tuple[rsa.RSAPrivateKey, str]
) -> None:
    other = "999-other.apps.googleusercontent.com"
    response = _sign_in(api, _id_token(google_key[0], aud=other), client_id=other)

    _assert_refused(response)
    assert response.json()["errors"][0]["code"] == "invalid_token"
    assert google_certs.requests == []
    assert User.objects.count() == 0


def test_google_sign_in_without_verified_email_gets_no_tokens(
    api: Client, google_certs: StubServer, google_key: tuple[rsa.RSAPrivateKey, str]
) -> None:
    """allauth accepts the token but, e-mail verification being mandatory, stops the login at
    the verify-email stage: 401 with a pending flow and no tokens."""
    response = _sign_in(api, _id_token(google_key[0], email_verified=False))

    _assert_refused(response, status=401)
    flows = {f["id"]: f for f in response.json()["data"]["flows"]}
    assert flows["verify_email"]["is_pending"] is True
    assert response.json()["meta"]["is_authenticated"] is False


def test_unverified_google_email_does_not_take_over_existing_account(
    api: Client,
    google_certs: StubServer,
    google_key: tuple[rsa.RSAPrivateKey, str],
    mailoutbox: list[Any],
) -> None:
    """An unverified Google e-mail must neither log into nor connect to the account that owns
    that address. allauth answers as for a new sign-up (no enumeration) and mails the owner an
    "account already exists" notice, which links to the password-reset page: that needs
    ``HEADLESS_FRONTEND_URLS["account_reset_password"]`` (without it: ImproperlyConfigured, 500)."""
    existing = User.objects.create_user("layla@example.com", "Very-secret-pw-123")
    EmailAddress.objects.create(
        user=existing, email="layla@example.com", verified=True, primary=True
    )

    response = _sign_in(api, _id_token(google_key[0], email_verified=False))

    _assert_refused(response, status=401)
    flows = {f["id"]: f for f in response.json()["data"]["flows"]}
    assert flows["verify_email"]["is_pending"] is True
    assert User.objects.count() == 1
    assert SocialAccount.objects.count() == 0
    assert [m.to for m in mailoutbox] == [["layla@example.com"]]
    assert "Account Already Exists" in mailoutbox[0].subject


def test_google_sign_in_by_an_unverified_address_drops_the_number_verified_on_it(
    api: Client, google_certs: StubServer, google_key: tuple[rsa.RSAPrivateKey, str]
) -> None:
    """Someone signed up with Layla's address (never verified) and their own number
    (verified by SMS). Her Google sign-in takes the account: allauth wipes its password, and
    the number goes too, or they would sign in by SMS code."""
    squatter = User.objects.create_user(
        "layla@example.com", "Squatters-pw-123", phone="+201001234567", phone_verified=True
    )
    EmailAddress.objects.create(
        user=squatter, email="layla@example.com", verified=False, primary=True
    )

    _sign_in(api, _id_token(google_key[0]))

    squatter.refresh_from_db()
    assert SocialAccount.objects.get(provider="google").user_id == squatter.id
    assert squatter.has_usable_password() is False  # allauth's wipe_password
    assert (squatter.phone, squatter.phone_verified) == (None, False)
    event = AuditEvent.objects.get(action="user.phone_removed")
    assert event.target_id == str(squatter.id)
    assert event.data["reason"] == "google_email_authentication"


def test_google_sign_in_by_an_unverified_address_keeps_the_number_of_a_proven_account(
    api: Client, google_certs: StubServer, google_key: tuple[rsa.RSAPrivateKey, str]
) -> None:
    """Layla's account has a verified address and is adding her Gmail address (not verified
    yet): her Google sign-in by it is her own, and costs her no phone number."""
    layla = User.objects.create_user(
        "layla.old@example.com", "Very-secret-pw-123", phone="+201001234567", phone_verified=True
    )
    EmailAddress.objects.create(
        user=layla, email="layla.old@example.com", verified=True, primary=True
    )
    EmailAddress.objects.create(user=layla, email="layla@example.com", verified=False)

    _sign_in(api, _id_token(google_key[0]))

    layla.refresh_from_db()
    assert SocialAccount.objects.get(provider="google").user_id == layla.id
    assert (layla.phone, layla.phone_verified) == ("+201001234567", True)
    assert not AuditEvent.objects.filter(action="user.phone_removed").exists()


def test_google_sign_in_by_a_verified_address_keeps_the_number(
    api: Client, google_certs: StubServer, google_key: tuple[rsa.RSAPrivateKey, str]
) -> None:
    existing = User.objects.create_user(
        "layla@example.com", "Very-secret-pw-123", phone="+201001234567", phone_verified=True
    )
    EmailAddress.objects.create(
        user=existing, email="layla@example.com", verified=True, primary=True
    )

    assert _sign_in(api, _id_token(google_key[0])).status_code == 200

    existing.refresh_from_db()
    assert (existing.phone, existing.phone_verified) == ("+201001234567", True)


def test_the_data_export_holds_the_google_profile_kept_of_the_account(
    api: Client, google_certs: StubServer, google_key: tuple[rsa.RSAPrivateKey, str]
) -> None:
    picture = "https://lh3.example/photo.jpg"
    r = _sign_in(api, _id_token(google_key[0], picture=picture, locale="ar"))
    assert r.status_code == 200
    account = SocialAccount.objects.get(provider="google")

    export = api.get(
        "/api/v1/me/export", headers={"Authorization": f"Bearer {r.json()['meta']['access_token']}"}
    ).json()

    (linked,) = export["linked_providers"]
    assert linked["provider"] == "google" and linked["uid"] == "109876543210987654321"
    assert linked["profile"] == account.extra_data
    assert {k: linked["profile"][k] for k in ("name", "email", "picture", "locale")} == {
        "name": "Layla Hassan",
        "email": "layla@example.com",
        "picture": picture,
        "locale": "ar",
    }
    assert linked["date_joined"] == account.date_joined.isoformat()
    assert linked["last_login"] == account.last_login.isoformat()
