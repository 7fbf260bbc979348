"""Secrets for development only, generated once and kept in ``var/dev-secrets.json``.

Production reads every secret from the environment and refuses to start without them
(see ``telemed/settings.py``); these exist so that ``make run`` needs no set-up.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path


def _secret_key() -> str:
    return secrets.token_urlsafe(64)


def _field_keys() -> str:
    return "dev1:" + base64.b64encode(secrets.token_bytes(32)).decode()


def _rsa_private_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


_GENERATORS: dict[str, Callable[[], str]] = {
    "secret_key": _secret_key,
    "field_encryption_keys": _field_keys,
    "jwt_private_key": _rsa_private_key,
}


def get(var_dir: Path, name: str) -> str:
    path = var_dir / "dev-secrets.json"
    var_dir.mkdir(parents=True, exist_ok=True)
    data: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    if name not in data:
        data[name] = _GENERATORS[name]()
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)
    return data[name]
