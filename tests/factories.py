"""Factories for the suite: real users through the real model manager."""

from __future__ import annotations

import itertools
import re
from typing import Any

from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client

from accounts.models import STAFF_ROLES, PatientProfile, Role, User

_seq = itertools.count(1)
PASSWORD = "Correct-Horse-Battery-9"
AUTH = "/_allauth/app/v1"


def make_user(
    *, role: str = Role.PATIENT, email: str | None = None, password: str = PASSWORD, **extra: Any
) -> User:
    email = email or f"user{next(_seq)}@example.com"
    user = User.objects.create_user(email, password, role=role, **extra)
    EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
    if role == Role.PATIENT:
        PatientProfile.objects.get_or_create(user=user)
    return user


def post(client: Client, path: str, data: dict | None = None, **headers: str):
    return client.post(path, data or {}, content_type="application/json", headers=headers)


def login(
    client: Client, email: str | None, password: str = PASSWORD, *, second_factor: bool = True
) -> dict[str, str]:
    """Sign in by e-mail and password. A staff account's session then passes the second
    factor too (unless ``second_factor`` is false), with a device enrolled if it has none."""
    assert email is not None
    r = post(client, f"{AUTH}/auth/login", {"email": email, "password": password})
    assert r.status_code == 200, r.json()
    meta = r.json()["meta"]
    tokens = {"access": meta["access_token"], "refresh": meta["refresh_token"]}
    user = User.objects.get(email__iexact=email)
    if second_factor and user.role in STAFF_ROLES and not user.must_change_password:
        pass_second_factor(client, user, tokens["access"])
    return tokens


def totp_code(device: Any) -> str:
    """The device's current code, as the staff member's authenticator app shows it."""
    from django_otp.oath import totp

    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):06d}"


def pass_second_factor(client: Client, user: User, access: str) -> None:
    """Pass a staff token session's second factor with a current code of the user's device
    (enrolled, confirmed, if none). A code is taken once per 30 s step (django-otp refuses a
    replay): a test that signs in again within the step is let use it again."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name="phone", confirmed=True)
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1, throttling_failure_count=0)
    r = post(client, "/api/v1/auth/second-factor", {"code": totp_code(device)}, **bearer(access))
    assert r.status_code == 204, r.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def reset_password_by_code(email: str, password: str) -> Any:
    """allauth's password reset by e-mail code, from a client of its own: the code is asked
    for, read from the mail sent, and used with the new password. The reset's answer (200,
    or 401 when the account must still verify something before it may sign in)."""
    client = Client()
    r = post(client, f"{AUTH}/auth/password/request", {"email": email})
    session = r.json()["meta"]["session_token"]
    return post(
        client,
        f"{AUTH}/auth/password/reset",
        {"key": last_code(), "password": password},
        **{"X-Session-Token": session},
    )


def last_code(outbox: list | None = None) -> str:
    """The code in the last e-mail sent (``ABCD-EFGH``) or in the last SMS captured."""
    text = str(mail.outbox[-1].body if outbox is None else outbox[-1].body)
    return re.search(r"\b[A-Z0-9]{4}-[A-Z0-9]{4}\b", text).group(0)  # type: ignore[union-attr]
