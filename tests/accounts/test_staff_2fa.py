"""ID-10: the Django admin requires a TOTP device; staff without one are led to enrol."""

from __future__ import annotations

import re
import time
from base64 import b32decode
from datetime import timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.utils import timezone
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts import otp
from accounts.models import Role, User
from audit.models import AuditEvent

pytestmark = pytest.mark.django_db

ENROL = "/admin/otp/enrol/"
LOGIN = "/admin/login/"
PASSWORD = "Correct-horse-battery-9"
OTPAUTH_RE = re.compile(r'href="(otpauth://[^"]+)"')


def make_user(email: str = "staff@example.com", role: str = Role.ADMIN) -> User:
    return User.objects.create_user(email=email, password=PASSWORD, role=role)


def token_at(key: bytes, when: float) -> str:
    totp = TOTP(key, step=30, t0=0, digits=6, drift=0)
    totp.time = when
    return f"{totp.token():06d}"


def start_enrolment(client: Client, email: str, password: str = PASSWORD):
    return client.post(ENROL, {"step": "password", "email": email, "password": password})


def shown_key(client: Client) -> tuple[str, bytes]:
    """The otpauth URI the enrolment page shows, and the secret key it carries."""
    page = client.get(ENROL)
    assert page.status_code == 200
    html = page.content.decode()
    match = OTPAUTH_RE.search(html)
    assert match, "no otpauth:// URI on the enrolment page"
    uri = unescape(match.group(1))
    assert uri.startswith("otpauth://totp/")
    secret = parse_qs(urlsplit(uri).query)["secret"][0]
    assert secret in html  # also shown for manual entry
    assert "<svg" in html  # and as an inline QR code
    return uri, b32decode(secret)


def enrol(client: Client, user: User) -> bytes:
    response = start_enrolment(client, user.email)
    assert response.status_code == 302
    _uri, key = shown_key(client)
    response = client.post(ENROL, {"step": "token", "otp_token": token_at(key, time.time())})
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    return key


def admin_login(client: Client, email: str, token: str, password: str = PASSWORD):
    return client.post(
        LOGIN,
        {"username": email, "password": password, "otp_token": token, "next": "/admin/"},
    )


def test_staff_without_device_cannot_reach_admin_with_password_only():
    user = make_user()
    client = Client()
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)

    response = admin_login(client, user.email, token="")
    assert response.status_code == 200  # the form again, not a redirect into the admin
    assert "no authenticator app yet" in response.content.decode()
    assert client.get("/admin/").status_code == 302

    response = admin_login(client, user.email, token="123456")
    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302

    # Even a session logged in by password alone is not enough.
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)


def test_login_page_links_to_enrolment():
    response = Client().get(LOGIN)
    assert response.status_code == 200
    html = response.content.decode()
    assert f'href="{ENROL}"' in html
    assert 'name="otp_token"' in html  # still django-otp's login form


def test_enrolment_page_asks_for_password_first():
    response = Client().get(ENROL)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="password"' in html
    assert "otpauth://" not in html
    assert TOTPDevice.objects.count() == 0


def test_enrolment_with_wrong_password_is_refused():
    user = make_user()
    client = Client()
    response = start_enrolment(client, user.email, password="wrong-password-1")
    assert response.status_code == 200
    assert "correct e-mail address and password" in response.content.decode()
    assert TOTPDevice.objects.count() == 0
    assert "otpauth://" not in client.get(ENROL).content.decode()


def test_patient_is_refused():
    patient = make_user("patient@example.com", role=Role.PATIENT)
    client = Client()
    response = start_enrolment(client, patient.email)
    assert response.status_code == 403
    assert TOTPDevice.objects.count() == 0
    assert "otpauth://" not in client.get(ENROL).content.decode()


def test_doctor_is_refused():
    doctor = make_user("doctor@example.com", role=Role.DOCTOR)
    assert start_enrolment(Client(), doctor.email).status_code == 403
    assert TOTPDevice.objects.count() == 0


def test_inactive_staff_is_refused():
    user = make_user()
    user.is_active = False
    user.save()
    response = start_enrolment(Client(), user.email)
    assert response.status_code == 200
    assert TOTPDevice.objects.count() == 0


def test_enrolment_confirms_device_logs_in_and_audits():
    user = make_user()
    client = Client()
    assert start_enrolment(client, user.email).status_code == 302
    device = TOTPDevice.objects.get(user=user)
    assert device.confirmed is False

    uri, key = shown_key(client)
    assert key == device.bin_key
    assert user.email.replace("@", "%40") in uri

    response = client.post(ENROL, {"step": "token", "otp_token": token_at(key, time.time())})
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    device.refresh_from_db()
    assert device.confirmed is True
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id
    assert client.get("/admin/").status_code == 200

    event = AuditEvent.objects.get(action="auth.totp_enrolled")
    assert event.target_type == "user"
    assert event.target_id == str(user.pk)
    assert event.actor_id == user.pk

    # Done: the page now sends them to the normal login instead of offering a new device.
    response = start_enrolment(Client(), user.email)
    assert response.status_code == 302
    assert response["Location"] == LOGIN
    assert TOTPDevice.objects.filter(user=user).count() == 1


def test_wrong_token_leaves_device_unconfirmed():
    user = make_user()
    client = Client()
    start_enrolment(client, user.email)
    _uri, key = shown_key(client)
    good = token_at(key, time.time())
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"

    response = client.post(ENROL, {"step": "token", "otp_token": wrong})
    assert response.status_code == 200
    assert "That code is not correct" in response.content.decode()
    device = TOTPDevice.objects.get(user=user)
    assert device.confirmed is False
    assert device.throttling_failure_count == 1
    assert client.get("/admin/").status_code == 302
    assert not AuditEvent.objects.filter(action="auth.totp_enrolled").exists()


def test_malformed_token_is_rejected_before_verification():
    user = make_user()
    client = Client()
    start_enrolment(client, user.email)
    response = client.post(ENROL, {"step": "token", "otp_token": "12ab56"})
    assert response.status_code == 200
    assert "6-digit code" in response.content.decode()
    device = TOTPDevice.objects.get(user=user)
    assert device.confirmed is False
    assert device.throttling_failure_count == 0


def test_token_guessing_is_throttled():
    user = make_user()
    client = Client()
    start_enrolment(client, user.email)
    _uri, key = shown_key(client)
    good = token_at(key, time.time())
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"

    client.post(ENROL, {"step": "token", "otp_token": wrong})
    # Right after a failure even the right code is not checked: guesses cannot be rapid.
    response = client.post(ENROL, {"step": "token", "otp_token": good})
    assert response.status_code == 200
    assert "Too many wrong codes" in response.content.decode()
    device = TOTPDevice.objects.get(user=user)
    assert device.confirmed is False
    assert client.get("/admin/").status_code == 302

    # The wait doubles with every failure: after 10 failures, 100 s is far from enough.
    device.throttling_failure_count = 10
    device.throttling_failure_timestamp = timezone.now() - timedelta(seconds=100)
    device.save()
    response = client.post(ENROL, {"step": "token", "otp_token": good})
    assert "Too many wrong codes" in response.content.decode()
    device.refresh_from_db()
    assert device.confirmed is False

    # Once the wait is over, the right code works (and resets the counter).
    device.throttling_failure_timestamp = timezone.now() - timedelta(hours=1)
    device.save()
    response = client.post(ENROL, {"step": "token", "otp_token": token_at(key, time.time())})
    assert response.status_code == 302
    device.refresh_from_db()
    assert device.confirmed is True
    assert device.throttling_failure_count == 0


def test_each_password_step_gives_the_unconfirmed_device_a_new_secret():
    """Whoever passed the password step earlier (someone who knows the password) is not
    shown the secret the staff member confirms next: each step gives the one unconfirmed
    device a new secret, and the earlier browser's set-up ends."""
    user = make_user()
    earlier, latest = Client(), Client()
    start_enrolment(earlier, user.email)
    _uri, earlier_key = shown_key(earlier)
    start_enrolment(latest, user.email)
    _uri, latest_key = shown_key(latest)
    assert TOTPDevice.objects.filter(user=user).count() == 1
    assert latest_key != earlier_key

    # The earlier browser's secret confirms nothing, and it is shown no other.
    response = earlier.post(
        ENROL, {"step": "token", "otp_token": token_at(earlier_key, time.time())}
    )
    assert response.status_code == 302 and response["Location"] == ENROL
    assert TOTPDevice.objects.get(user=user).confirmed is False
    page = earlier.get(ENROL).content.decode()
    assert "otpauth://" not in page and 'name="password"' in page

    response = latest.post(ENROL, {"step": "token", "otp_token": token_at(latest_key, time.time())})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    device = TOTPDevice.objects.get(user=user)
    assert device.confirmed is True and device.bin_key == latest_key != earlier_key


def test_admin_login_with_password_and_token_after_enrolment():
    user = make_user()
    key = enrol(Client(), user)

    client = Client()
    now = time.time()
    wrong = f"{(int(token_at(key, now + 30)) + 1) % 1_000_000:06d}"
    response = admin_login(client, user.email, token=wrong)
    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302

    TOTPDevice.objects.filter(user=user).update(throttling_failure_timestamp=None)
    # The enrolment code's time step is used up; the next step's code is within tolerance.
    response = admin_login(client, user.email, token=token_at(key, now + 30))
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_admin_login_with_token_but_wrong_password_fails():
    user = make_user()
    key = enrol(Client(), user)
    client = Client()
    response = admin_login(
        client, user.email, token=token_at(key, time.time() + 30), password="wrong-password-1"
    )
    assert response.status_code == 200
    assert client.get("/admin/").status_code == 302


def test_helper_is_staff_too():
    helper = make_user("helper@example.com", role=Role.HELPER)
    assert helper.is_staff
    client = Client()
    enrol(client, helper)
    assert TOTPDevice.objects.get(user=helper).confirmed is True
    assert client.get("/admin/").status_code == 200


def test_helper_without_device_cannot_reach_admin():
    helper = make_user("helper@example.com", role=Role.HELPER)
    client = Client()
    client.force_login(helper)
    assert client.get("/admin/").status_code == 302


def test_password_failures_are_rate_limited(settings):
    # A cache of this test's own: the shared Redis DB can be flushed by a concurrent run.
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    user = make_user()
    limit, _window = otp.PASSWORD_FAILURES_PER_EMAIL
    for _ in range(limit):
        response = start_enrolment(Client(), user.email, password="wrong-password-1")
        assert response.status_code == 200
    response = start_enrolment(Client(), user.email)  # the right password, too late
    assert response.status_code == 429
    assert TOTPDevice.objects.count() == 0


def test_pending_enrolment_expires():
    user = make_user()
    client = Client()
    start_enrolment(client, user.email)
    session = client.session
    session[otp.SESSION_KEY]["at"] = time.time() - otp.PENDING_TTL - 1
    session.save()
    html = client.get(ENROL).content.decode()
    assert "otpauth://" not in html
    assert 'name="password"' in html


def test_pending_enrolment_ends_when_password_changes():
    user = make_user()
    client = Client()
    start_enrolment(client, user.email)
    user.set_password("Another-password-42")
    user.save()
    assert "otpauth://" not in client.get(ENROL).content.decode()


def test_enrolment_is_csrf_protected():
    user = make_user()
    client = Client(enforce_csrf_checks=True)
    response = start_enrolment(client, user.email)
    assert response.status_code == 403
    assert TOTPDevice.objects.count() == 0
