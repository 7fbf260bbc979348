"""Production mode refuses to start insecurely, and passes ``check --deploy`` cleanly."""

import json
import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.procs import ROOT

_PEM = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    .decode()
    .replace("\n", "\\n")  # one line, as in an environment file
)

PRODUCTION_ENV = {
    "DJANGO_ENV": "production",
    "DJANGO_SETTINGS_MODULE": "telemed.settings",
    "SECRET_KEY": "p" + "Zq8#x!Lm2@Vb7$Rt5%Yw3^Nc9&Hs1*Kd4(Fg6)Jh0-Ua_" * 2,
    "ALLOWED_HOSTS": "api.example.org",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/telemed_unused",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "FIELD_ENCRYPTION_KEYS": "p1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
    "JWT_PRIVATE_KEY": _PEM,
    # Production refuses the console SMS provider and e-mail backend (they print to the logs).
    "SMS_PROVIDER": "twilio",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
    "TWILIO_AUTH_TOKEN": "a-token",
    "TWILIO_FROM_NUMBER": "+15005550006",
    "EMAIL_URL": "smtp+tls://u:p@smtp.example.org:587",
    # Without a scanner, or with files on a disk the separate worker may not see, records
    # cannot work: check --deploy warns (records.W001, records.W002).
    "CLAMD_HOST": "clamav",
    "STORAGE_BACKEND": "s3",
    "STORAGE_S3_BUCKET": "telemed-records",
    # The load balancer that ends TLS: the ASGI server takes X-Forwarded-Proto from it alone.
    "FORWARDED_ALLOW_IPS": "10.0.0.2",
}


def run(code_or_args, env_changes):
    env = {k: v for k, v in os.environ.items() if k not in PRODUCTION_ENV and k != "VAR_DIR"}
    env.update(env_changes)
    env = {k: v for k, v in env.items() if v is not None}
    args = code_or_args if isinstance(code_or_args, list) else [sys.executable, "-c", code_or_args]
    return subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)  # noqa: S603


def test_check_deploy_passes_without_warnings():
    r = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        PRODUCTION_ENV,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no issues" in r.stdout


@pytest.mark.parametrize(
    ("changes", "warned", "not_warned"),
    [
        ({"CLAMD_HOST": None}, "records.W001", "records.W002"),
        ({"STORAGE_BACKEND": None}, "records.W002", "records.W001"),
        # Files on a local disk are not encrypted at rest (on S3, with STORAGE_S3_SSE).
        ({"STORAGE_BACKEND": None}, "records.W003", "records.W001"),
        # The one-process setup: the worker is a thread of the server and sees its disk.
        (
            {
                "STORAGE_BACKEND": None,
                "TASK_WORKER_IN_PROCESS": "true",
                "SILENCED_SYSTEM_CHECKS": "records.W003",
            },
            None,
            "records.W002",
        ),
        (
            {"STORAGE_BACKEND": None, "SILENCED_SYSTEM_CHECKS": "records.W002, records.W003"},
            None,
            "records.W002",
        ),
        # The orphan sweep would delete uploads still in flight.
        ({"RECORDS_ORPHAN_GRACE_SECONDS": "600"}, "records.E001", "records.W001"),
        (
            {"RECORDS_ORPHAN_GRACE_SECONDS": "3600", "RECORDS_DIRECT_UPLOAD_TTL": "7200"},
            "records.E001",
            "records.W001",
        ),
        ({"RECORDS_ORPHAN_GRACE_SECONDS": "7200"}, None, "records.E001"),
    ],
)
def test_check_deploy_warns_when_records_cannot_work(changes, warned, not_warned):
    r = run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        {**PRODUCTION_ENV, **changes},
    )
    out = r.stdout + r.stderr
    assert not_warned not in out
    if warned:
        assert r.returncode != 0 and warned in out, out
    else:
        assert r.returncode == 0, out


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("SECRET_KEY", "SECRET_KEY must be set"),
        ("ALLOWED_HOSTS", "ALLOWED_HOSTS must list"),
        ("DATABASE_URL", "DATABASE_URL must point at PostgreSQL"),
        ("REDIS_URL", "REDIS_URL must be set"),
        ("FIELD_ENCRYPTION_KEYS", "FIELD_ENCRYPTION_KEYS must be set"),
        ("JWT_PRIVATE_KEY", "JWT_PRIVATE_KEY must be set"),
    ],
)
def test_production_refuses_to_start_without(missing, message):
    r = run("import django; django.setup()", {**PRODUCTION_ENV, missing: None})
    assert r.returncode != 0
    assert message in r.stderr


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("SECRET_KEY", "short", "too short"),
        ("ALLOWED_HOSTS", "*", "ALLOWED_HOSTS must list"),
        ("FIELD_ENCRYPTION_KEYS", "k:AAAA", "must be 32 bytes"),
    ],
)
def test_production_refuses_weak_values(name, value, message):
    code = "import django; django.setup(); from core import crypto; crypto.keyring()"
    r = run(code, {**PRODUCTION_ENV, name: value})
    assert r.returncode != 0
    assert message in r.stderr


def test_production_hardening_is_on():
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.DEBUG, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, s.SESSION_COOKIE_SECURE, "
        "s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_INCLUDE_SUBDOMAINS]))"
    )
    r = run(code, PRODUCTION_ENV)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [False, True, 31536000, True, True, True]


def test_embedded_defaults_need_nothing_but_python(tmp_path):
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.DATABASES['default']['ENGINE'], s.DATABASES['default']['OPTIONS']['transaction_mode'], "
        "s.CHANNEL_LAYERS['default']['BACKEND'], s.CACHES['default']['BACKEND'], "
        "s.STORAGES['default']['BACKEND'], s.EMAIL_BACKEND, s.TASK_WORKER_IN_PROCESS]))"
    )
    r = run(
        code,
        {
            "DJANGO_SETTINGS_MODULE": "telemed.settings",
            "VAR_DIR": str(tmp_path),
            "DATABASE_URL": None,
            "REDIS_URL": None,
            "TASK_WORKER_IN_PROCESS": None,
        },
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [
        "django.db.backends.sqlite3",
        "IMMEDIATE",
        "channels.layers.InMemoryChannelLayer",
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.files.storage.FileSystemStorage",
        "django.core.mail.backends.console.EmailBackend",
        True,
    ]


@pytest.mark.parametrize(
    "name",
    [
        "SECRET_KEY",
        "FIELD_ENCRYPTION_KEYS",
        "JWT_PRIVATE_KEY",
        "DATABASE_URL",
        "STORAGE_S3_SECRET_ACCESS_KEY",
    ],
)
def test_production_refuses_the_public_placeholders_of_the_compose_file(name):
    """A deployment that forgot one secret must not run on the one anyone can read in
    docker-compose.yml (its local trial opts in)."""
    from tests.platform.test_compose import service_env

    placeholder = service_env("app")[name]
    refused = run("import django; django.setup()", {**PRODUCTION_ENV, name: placeholder})
    assert refused.returncode != 0
    assert f"{name} is a public development placeholder" in refused.stderr
    trial = {**PRODUCTION_ENV, name: placeholder, "ALLOW_PLACEHOLDER_SECRETS": "true"}
    assert run("import django; django.setup()", trial).returncode == 0


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"SMS_PROVIDER": "capture"}, "SMS_PROVIDER=capture (tests) sends nothing"),
        ({"SMS_PROVIDER": "Twilio"}, "SMS_PROVIDER must be console, capture or twilio"),
        ({"TWILIO_AUTH_TOKEN": None}, "SMS_PROVIDER=twilio needs TWILIO_ACCOUNT_SID"),
        (
            {"EMAIL_URL": None, "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"},
            "sends nothing: not in production",
        ),
        (
            {"EMAIL_URL": None, "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend"},
            "sends nothing: not in production",
        ),
    ],
)
def test_production_refuses_delivery_that_sends_nothing(changes, message):
    r = run("import django; django.setup()", {**PRODUCTION_ENV, **changes})
    assert r.returncode != 0
    assert message in r.stderr


def test_spaces_in_comma_separated_lists_are_dropped_and_proxy_headers_are_the_servers():
    """Comma-separated "a.org, b.org" is two hosts, not "a.org" and " b.org" (which no request
    matches).
    X-Forwarded-Proto is the ASGI server's to trust (FORWARDED_ALLOW_IPS), not Django's
    from any client."""
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.ALLOWED_HOSTS, s.CORS_ALLOWED_ORIGINS, s.CSRF_TRUSTED_ORIGINS, "
        "s.SECURE_PROXY_SSL_HEADER]))"
    )
    env = {
        **PRODUCTION_ENV,
        "ALLOWED_HOSTS": "api.example.org, www.example.org,",
        "CORS_ALLOWED_ORIGINS": "https://a.example.org , https://b.example.org",
    }
    r = run(code, env)
    assert r.returncode == 0, r.stderr
    origins = ["https://a.example.org", "https://b.example.org"]
    assert json.loads(r.stdout) == [["api.example.org", "www.example.org"], origins, origins, None]


def test_check_deploy_warns_when_no_proxy_is_trusted_for_the_scheme():
    """Django no longer reads X-Forwarded-Proto itself: behind a TLS proxy the server must be
    told to trust it, or the HTTPS redirect loops."""
    check = [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"]
    r = run(check, {**PRODUCTION_ENV, "FORWARDED_ALLOW_IPS": None})
    assert r.returncode != 0 and "core.W001" in r.stdout + r.stderr
    # A server that ends TLS itself silences it.
    quiet = {**PRODUCTION_ENV, "FORWARDED_ALLOW_IPS": None, "SILENCED_SYSTEM_CHECKS": "core.W001"}
    r = run(check, quiet)
    assert r.returncode == 0, r.stdout + r.stderr
