"""Field encryption for protected health information.

AES-256-GCM (authenticated): a value is stored as ``enc1:<key id>:<base64(nonce|ciphertext)>``.
The key id travels with each value so that keys can be rotated: the first key of
``FIELD_ENCRYPTION_KEYS`` encrypts, every listed key decrypts, and
``manage.py rotate_field_keys`` re-encrypts what is still under an old key.

A *context* (the column's ``app_label.model.field``) is bound in as associated data, so a
ciphertext copied into another column, or tampered with in any way, is refused.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

PREFIX = "enc1"
NONCE_BYTES = 12


class DecryptionError(Exception):
    """A stored value failed authentication: tampered, truncated or under an unknown key."""


@dataclass(frozen=True)
class KeyRing:
    current_id: str
    keys: dict[str, AESGCM]

    @classmethod
    def parse(cls, spec: str) -> KeyRing:
        keys: dict[str, AESGCM] = {}
        order: list[str] = []
        for part in filter(None, (p.strip() for p in spec.split(","))):
            kid, sep, b64 = part.partition(":")
            if not sep or not kid or ":" in kid:
                raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS entries look like id:base64key")
            try:
                raw = base64.b64decode(b64, validate=True)
            except binascii.Error as exc:
                raise ImproperlyConfigured(f"field key {kid} is not valid base64") from exc
            if len(raw) != 32:
                raise ImproperlyConfigured(f"field key {kid} must be 32 bytes")
            if kid in keys:
                raise ImproperlyConfigured(f"field key id {kid} is listed twice")
            keys[kid] = AESGCM(raw)
            order.append(kid)
        if not order:
            raise ImproperlyConfigured("FIELD_ENCRYPTION_KEYS is empty")
        return cls(current_id=order[0], keys=keys)


@lru_cache(maxsize=4)
def _ring_for(spec: str) -> KeyRing:
    return KeyRing.parse(spec)


def keyring() -> KeyRing:
    return _ring_for(settings.FIELD_ENCRYPTION_KEYS)


@checks.register(checks.Tags.security)
def check_field_keys(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A bad key list fails ``manage.py check`` (and ``migrate``, which runs the checks)
    instead of the first read or write of a protected field. Registered when this module is
    imported, which the models' encrypted fields (core.fields) do."""
    try:
        KeyRing.parse(settings.FIELD_ENCRYPTION_KEYS)
    except ImproperlyConfigured as exc:
        return [checks.Error(f"FIELD_ENCRYPTION_KEYS is not usable: {exc}", id="core.E001")]
    return []


def encrypt(plaintext: str, *, context: str) -> str:
    ring = keyring()
    nonce = os.urandom(NONCE_BYTES)
    sealed = ring.keys[ring.current_id].encrypt(nonce, plaintext.encode(), context.encode())
    return f"{PREFIX}:{ring.current_id}:{base64.b64encode(nonce + sealed).decode()}"


def key_id_of(token: str) -> str | None:
    parts = token.split(":", 2)
    return parts[1] if len(parts) == 3 and parts[0] == PREFIX else None


def decrypt(token: str, *, context: str) -> str:
    parts = token.split(":", 2)
    if len(parts) != 3 or parts[0] != PREFIX:
        raise DecryptionError("not an encrypted value")
    _, kid, b64 = parts
    key = keyring().keys.get(kid)
    if key is None:
        raise DecryptionError(f"unknown key id {kid}")
    try:
        blob = base64.b64decode(b64, validate=True)
        return key.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], context.encode()).decode()
    except (binascii.Error, InvalidTag, ValueError) as exc:
        raise DecryptionError("value failed authentication") from exc


def generate_key_spec(key_id: str) -> str:
    """A new ``id:base64key`` entry, for ``manage.py rotate_field_keys --new-key``."""
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"
