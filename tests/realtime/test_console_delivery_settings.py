"""Production refuses the console SMS provider and e-mail backend (they print phone numbers,
login codes and message bodies to the logs) unless a local demo opts in."""

from __future__ import annotations

import pytest

from tests.platform.test_settings import PRODUCTION_ENV, run

CHECK = (
    "import django; django.setup(); from django.conf import settings; "
    "print(settings.SMS_PROVIDER, settings.EMAIL_BACKEND)"
)
REAL_DELIVERY = {
    "SMS_PROVIDER": "twilio",
    "EMAIL_URL": "smtp+tls://user:pw@smtp.example.org:587",
    "ALLOW_CONSOLE_DELIVERY": None,
}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"SMS_PROVIDER": None, "EMAIL_URL": None}, "SMS_PROVIDER=console prints"),
        ({"SMS_PROVIDER": "console"}, "SMS_PROVIDER=console prints"),
        ({"EMAIL_URL": None}, "the console e-mail backend prints"),
        ({"EMAIL_URL": "consolemail://"}, "the console e-mail backend prints"),
        (
            {"EMAIL_BACKEND": "django.core.mail.backends.console.EmailBackend"},
            "the console e-mail backend prints",
        ),
    ],
)
def test_production_refuses_console_delivery(changes, message):
    r = run(CHECK, {**PRODUCTION_ENV, **REAL_DELIVERY, **changes})
    assert r.returncode != 0
    assert "ImproperlyConfigured" in r.stderr and message in r.stderr


def test_production_starts_with_real_delivery_or_an_explicit_opt_in():
    real = run(CHECK, {**PRODUCTION_ENV, **REAL_DELIVERY})
    assert real.returncode == 0, real.stderr
    assert real.stdout.split() == ["twilio", "django.core.mail.backends.smtp.EmailBackend"]
    demo = run(
        CHECK,
        {
            **PRODUCTION_ENV,
            "SMS_PROVIDER": None,
            "EMAIL_URL": None,
            "ALLOW_CONSOLE_DELIVERY": "true",
        },
    )
    assert demo.returncode == 0, demo.stderr
    assert demo.stdout.split() == ["console", "django.core.mail.backends.console.EmailBackend"]


def test_development_keeps_console_delivery(tmp_path):
    env = {"DJANGO_ENV": "development", "DJANGO_SETTINGS_MODULE": "telemed.settings"}
    r = run(CHECK, {**env, "VAR_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["console", "django.core.mail.backends.console.EmailBackend"]
