"""Factories for the suite: real users through the real model manager."""

from __future__ import annotations

import itertools
import re
from typing import Any

from allauth.account.models import EmailAddress
from django.core import mail
from django.test import Client

from accounts.models import PatientProfile, Role, User

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


def login(client: Client, email: str | None, password: str = PASSWORD) -> dict[str, str]:
    assert email is not None
    r = post(client, f"{AUTH}/auth/login", {"email": email, "password": password})
    assert r.status_code == 200, r.json()
    meta = r.json()["meta"]
    return {"access": meta["access_token"], "refresh": meta["refresh_token"]}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def last_code(outbox: list | None = None) -> str:
    """The code in the last e-mail sent (``ABCD-EFGH``) or in the last SMS captured."""
    text = str(mail.outbox[-1].body if outbox is None else outbox[-1].body)
    return re.search(r"\b[A-Z0-9]{4}-[A-Z0-9]{4}\b", text).group(0)  # type: ignore[union-attr]
