"""Print a bearer token for a fuzzing role: ``fuzz_token.py BASE_URL ROLE``.

Creates (once) a user of that role in the fuzz database, with a verified e-mail, then logs
in through the running server's real login endpoint and prints the access token. Used by
``scripts/fuzz.sh`` only; it runs against the throw-away database that script creates.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request
from pathlib import Path

import django

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    base, role = sys.argv[1], sys.argv[2]
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "telemed.settings")
    django.setup()
    from allauth.account.models import EmailAddress

    from accounts.models import STAFF_ROLES, PatientProfile, User

    email, password = f"fuzz-{role}@fuzz.invalid", f"Fuzz-{role}-password-2026"
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User.objects.create_user(email, password, role=role, is_superuser=role == "admin")
        EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
        if role == "patient":
            PatientProfile.objects.create(user=user)
    request = urllib.request.Request(  # noqa: S310 (loopback URL from fuzz.sh)
        f"{base}/_allauth/app/v1/auth/login",
        data=json.dumps({"email": email, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback URL from fuzz.sh)
        token = json.loads(response.read())["meta"]["access_token"]
    if user.role in STAFF_ROLES:
        _pass_second_factor(base, user, token)
    print(token)


def _pass_second_factor(base: str, user: object, token: str) -> None:
    """Staff tokens reach the API once their session passed the second factor: with a
    device of the fuzz user (made once), through the running server's real endpoint."""
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    device, _ = TOTPDevice.objects.get_or_create(user=user, defaults={"confirmed": True})
    TOTPDevice.objects.filter(pk=device.pk).update(last_t=-1)  # a run may ask twice a step
    code = totp(device.bin_key, device.step, device.t0, device.digits, device.drift)
    request = urllib.request.Request(  # noqa: S310 (loopback URL from fuzz.sh)
        f"{base}/api/v1/auth/second-factor",
        data=json.dumps({"code": f"{code:06d}"}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 (loopback URL from fuzz.sh)
        pass


if __name__ == "__main__":
    main()
