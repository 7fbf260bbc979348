"""Settings, read from the environment.

Every setting has an embedded default so that the server runs with nothing but Python
(SQLite, in-memory channel layer, local-memory cache, local-disk storage, console e-mail).
Setting ``DATABASE_URL``, ``REDIS_URL``, ``STORAGE_BACKEND=s3`` or ``CLAMD_*`` switches each
part to the real service. ``DJANGO_ENV=production`` refuses to start insecurely.
Each name is documented in the README's configuration table.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from core import devsecrets

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
if DJANGO_ENV not in {"development", "production", "test"}:
    raise ImproperlyConfigured("DJANGO_ENV must be development, production or test")
PRODUCTION = DJANGO_ENV == "production"
DEBUG = env.bool("DEBUG", default=not PRODUCTION)
if PRODUCTION and DEBUG:
    # Debug pages show settings, SQL and local variables (health data) to anyone.
    raise ImproperlyConfigured("DEBUG must be off when DJANGO_ENV=production")
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))


# Settings production refuses to start without (a test checks docker-compose gives them all).
REQUIRED_IN_PRODUCTION = [
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "FIELD_ENCRYPTION_KEYS",
]


def _required_in_production(name: str, dev_default):
    value = env.str(name, default="")
    if value:
        return value
    if PRODUCTION:
        raise ImproperlyConfigured(f"{name} must be set when DJANGO_ENV=production")
    return dev_default() if callable(dev_default) else dev_default


# docker-compose.yml's development placeholders are public ("dev-only-..."; its JWT key, which
# cannot say so, by its digest): production refuses them unless a local trial opts in
# (ALLOW_PLACEHOLDER_SECRETS=true, which that file sets).
ALLOW_PLACEHOLDER_SECRETS = env.bool("ALLOW_PLACEHOLDER_SECRETS", default=False)
_COMPOSE_JWT_KEY_SHA256 = "8f100bd8c6c208e84afca5c663f6f861866273b816406f71f437b1232d6677d4"
if PRODUCTION and not ALLOW_PLACEHOLDER_SECRETS:
    for _name in (
        "SECRET_KEY",
        "FIELD_ENCRYPTION_KEYS",
        "JWT_PRIVATE_KEY",
        "DATABASE_URL",
        "REDIS_URL",
        "STORAGE_S3_SECRET_ACCESS_KEY",
    ):
        _value = env.str(_name, default="")
        _digest = hashlib.sha256(_value.replace("\\n", "\n").strip().encode()).hexdigest()
        if re.search(r"dev-?only", _value, re.IGNORECASE) or _digest == _COMPOSE_JWT_KEY_SHA256:
            raise ImproperlyConfigured(
                f"{_name} is a public development placeholder of docker-compose.yml: set a "
                "secret of your own (or ALLOW_PLACEHOLDER_SECRETS=true for a local trial)"
            )


def _env_list(name: str, default: list[str]) -> list[str]:
    """A comma-separated setting, each entry stripped ("a.org, b.org" is two hosts)."""
    return [v.strip() for v in env.list(name, default=default) if v.strip()]


SECRET_KEY = _required_in_production("SECRET_KEY", lambda: devsecrets.get(VAR_DIR, "secret_key"))
if PRODUCTION and (len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5):
    raise ImproperlyConfigured("SECRET_KEY is too short or too simple for production")

ALLOWED_HOSTS = _env_list(
    "ALLOWED_HOSTS", default=[] if PRODUCTION else ["127.0.0.1", "localhost", "testserver", "[::1]"]
)
if PRODUCTION and (not ALLOWED_HOSTS or "*" in ALLOWED_HOSTS):
    raise ImproperlyConfigured("ALLOWED_HOSTS must list the served host names in production")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "channels",
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.google",
    "allauth.headless",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "ninja",
    "django_tasks",
    "django_tasks_db",
    "core",
    "telemed",
    "accounts",
    "audit",
    "doctors",
    "bookings",
    "payments",
    "chat",
    "records",
    "realtime",
]

MIDDLEWARE = [
    "telemed.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "telemed.middleware.SecurityHeadersMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "telemed.middleware.ApiGuardMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "accounts.middleware.AllauthEdgeMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "telemed.urls"
ASGI_APPLICATION = "telemed.asgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db("DATABASE_URL")}
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"].endswith("postgresql"):
        # Web queries are short: parallel plans made PostgreSQL scan every clinic instead of
        # using the H3 index (bench/RESULTS.md, directory). Analytics may raise it per session.
        workers = env.int("DB_PARALLEL_WORKERS", default=0)
        DATABASES["default"].setdefault("OPTIONS", {})["options"] = (
            f"-c max_parallel_workers_per_gather={workers}"
        )
    pool_max = env.int("DB_POOL_MAX_SIZE", default=20)
    if DATABASES["default"]["ENGINE"].endswith("postgresql") and pool_max > 0:
        # psycopg's connection pool: under ASGI each request may run on another thread, so
        # persistent per-thread connections (CONN_MAX_AGE) are not reused; a pool is. It
        # keeps at least cores + 4 connections open (the threads of the event loop's
        # executor, which runs socket handlers; requests run on up to ASGI_THREADS): a pool
        # that grew only on demand connected inside the first second of a burst, in front of
        # the requests waiting for it (bench/RESULTS.md, gateway, sixth session).
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int(
                "DB_POOL_MIN_SIZE", default=min(pool_max, (os.cpu_count() or 1) + 4)
            ),
            "max_size": pool_max,
            "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
        }
    else:
        DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=0)
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "telemed.sqlite3",
            # IMMEDIATE: a write transaction takes the lock at BEGIN, so concurrent writers
            # queue instead of failing with "database is locked" half-way through.
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }
if PRODUCTION and DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL in production")

# --- Redis: cache and channel layer ---------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
REDIS_KEY_PREFIX = env.str("REDIS_KEY_PREFIX", default="telemed")
REDIS_MAX_CONNECTIONS = env.int("REDIS_MAX_CONNECTIONS", default=1000)
# After a Redis timeout or connection error, commands to it fail at once for this long
# (core/redis_breaker.py): a hung Redis costs one timeout, not one per request.
REDIS_BREAKER_SECONDS = env.float("REDIS_BREAKER_SECONDS", default=5.0)
if PRODUCTION and not REDIS_URL:
    raise ImproperlyConfigured(
        "REDIS_URL must be set in production (shared cache and channel layer)"
    )

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "core.cache.SharedClientRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_KEY_PREFIX,
            "OPTIONS": {
                "socket_connect_timeout": 1,
                "socket_timeout": 2,
                "max_connections": REDIS_MAX_CONNECTIONS,
            },
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            # The pub/sub layer measured best here (see NOTES.md); it loses messages across a
            # Redis reconnect, which the gateway answers by closing sockets so clients resume.
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                "hosts": [{"address": REDIS_URL, "max_connections": REDIS_MAX_CONNECTIONS}],
                "prefix": f"{REDIS_KEY_PREFIX}:ch",
            },
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# Threads that run the synchronous part of HTTP requests (core/asgi.py), per process: at most
# this many requests are in their view at once; the rest wait their turn on the event loop.
# As many as the database pool keeps open (cores + 4): on 2 cores, 6 threads sustained 75-82
# bookings/s where 20 sustained 68/s; past its limit a process on 20 threads spent ~50% more
# CPU per request (14-19 ms a booking against 10-11 ms), so an overload fed itself
# (bench/RESULTS.md, seventh session). A file uploaded through the API holds its thread while
# it is stored: where many such uploads run at once, raise this, or have clients upload
# straight to object storage (a presigned POST, which holds no thread).
ASGI_THREADS = env.int("ASGI_THREADS", default=min(32, (os.cpu_count() or 1) + 4))
# Threads per process that run socket handlers (chat.send, chat.read, ...); 0: the event
# loop's default executor (min(32, cores + 4) threads).
SOCKET_THREADS = env.int("SOCKET_THREADS", default=0)
# Every this many seconds the server collects what is new and freezes what survived, so that
# no collection pauses for the whole heap at a rate set by traffic (core/collector.py); 0
# leaves Python's own collector alone. A round's pause grows with what survived since the last
# one: at 200 chat messages/s, rounds every 5 s paused 12-40 ms, every second under 10 ms
# (bench/RESULTS.md, chat, sixth session).
GC_FREEZE_SECONDS = env.float("GC_FREEZE_SECONDS", default=1.0)

# --- Background tasks -----------------------------------------------------------------
TASKS = {"default": {"BACKEND": "core.tasks.DatabaseBackend"}}
# With the in-memory channel layer a worker in another process could not reach sockets,
# so the embedded default runs the worker as a thread of the server process.
TASK_WORKER_IN_PROCESS = env.bool("TASK_WORKER_IN_PROCESS", default=not REDIS_URL)

# --- Storage --------------------------------------------------------------------------
STORAGE_BACKEND = env.str("STORAGE_BACKEND", default="local")
MEDIA_ROOT = VAR_DIR / "media"
STATIC_URL = "static/"
# Static files (admin, API docs) are served by WhiteNoise straight from the installed apps;
# set STATIC_ROOT and run collectstatic to serve a collected, compressed copy instead.
STATIC_ROOT = env.str("STATIC_ROOT", default="") or None
WHITENOISE_USE_FINDERS = STATIC_ROOT is None
if STORAGE_BACKEND == "s3":
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("STORAGE_S3_BUCKET"),
            "endpoint_url": env.str("STORAGE_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("STORAGE_S3_REGION", default="us-east-1"),
            "access_key": env.str("STORAGE_S3_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("STORAGE_S3_SECRET_ACCESS_KEY", default="") or None,
            "location": env.str("STORAGE_S3_PREFIX", default=""),
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": env.int("STORAGE_URL_TTL", default=60),
            "file_overwrite": False,
            "object_parameters": {
                "ServerSideEncryption": env.str("STORAGE_S3_SSE", default="AES256")
            },
        },
    }
elif STORAGE_BACKEND == "local":
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        # Medical files readable by the server's account only (Django's default is 0o644).
        # No encryption at rest here: production uses S3 (check --deploy: records.W003).
        "OPTIONS": {
            "location": MEDIA_ROOT,
            "base_url": None,
            "file_permissions_mode": 0o600,
            "directory_permissions_mode": 0o700,
        },
    }
else:
    raise ImproperlyConfigured("STORAGE_BACKEND must be local or s3")
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# --- E-mail ---------------------------------------------------------------------------
# EMAIL_URL: smtp+tls://user:password@host:587 (django-environ syntax); console by default.
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
# EMAIL_BACKEND: any Django e-mail backend, e.g. a django-anymail provider's
# ("anymail.backends.sendgrid.EmailBackend"), with its keys in ANYMAIL (JSON).
if env.str("EMAIL_BACKEND", default=""):
    EMAIL_BACKEND = env.str("EMAIL_BACKEND")
ANYMAIL = env.json("ANYMAIL", default={})
# Seconds an SMTP connection may wait on the server (EMAIL_URL cannot carry it).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=20)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Telemed <no-reply@telemed.local>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Virus scanner --------------------------------------------------------------------
# /readyz: one round of probes per process at a time, its result reused for this long.
HEALTH_READY_REUSE_SECONDS = env.float("HEALTH_READY_REUSE_SECONDS", default=1.0)
CLAMD_SOCKET = env.str("CLAMD_SOCKET", default="")
CLAMD_HOST = env.str("CLAMD_HOST", default="")
CLAMD_PORT = env.int("CLAMD_PORT", default=3310)
CLAMD_TIMEOUT = env.float("CLAMD_TIMEOUT", default=30.0)

# --- Medical records -------------------------------------------------------------------
RECORDS_MAX_UPLOAD_BYTES = env.int("RECORDS_MAX_UPLOAD_BYTES", default=20 * 1024 * 1024)
RECORDS_RETENTION_DAYS = env.int("RECORDS_RETENTION_DAYS", default=30)
# Presigned URLs (S3) and signed download links (local disk) live this long.
# A presigned S3 link cannot be taken back: it lives this long whatever happens meanwhile
# (the record deleted, the account closed, care ended), so it is short.
RECORDS_DOWNLOAD_TTL = env.int("STORAGE_URL_TTL", default=60)
RECORDS_DIRECT_UPLOAD_TTL = env.int("RECORDS_DIRECT_UPLOAD_TTL", default=900)
RECORDS_SCAN_RETRY_MAX_SECONDS = env.int("RECORDS_SCAN_RETRY_MAX_SECONDS", default=3600)
# Failed scan attempts after which a file is refused (about a day at the default backoff).
RECORDS_SCAN_MAX_ATTEMPTS = env.int("RECORDS_SCAN_MAX_ATTEMPTS", default=30)
# An object under quarantine/ or records/ that no record needs is deleted once this old
# (records/orphans.py): never an upload still in flight.
RECORDS_ORPHAN_GRACE_SECONDS = env.int("RECORDS_ORPHAN_GRACE_SECONDS", default=86400)
RECORDS_BREAK_GLASS_MINUTES = env.int("RECORDS_BREAK_GLASS_MINUTES", default=60)
# Bodies larger than API_MAX_BODY_BYTES, by path prefix: the upload and its form fields.
API_BODY_LIMITS = {"/api/v1/records": RECORDS_MAX_UPLOAD_BYTES + 64 * 1024}

# --- Field encryption (protected health information) ----------------------------------
# "kid:base64-32-byte-key,kid2:..." - the first key encrypts, all of them decrypt.
FIELD_ENCRYPTION_KEYS = _required_in_production(
    "FIELD_ENCRYPTION_KEYS", lambda: devsecrets.get(VAR_DIR, "field_encryption_keys")
)

# --- Auth -----------------------------------------------------------------------------
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

# allauth, headless API only (``/_allauth/app/v1/``), JWT tokens. See README "Accounts".
ACCOUNT_ADAPTER = "accounts.adapter.AccountAdapter"
ACCOUNT_SIGNUP_FORM_CLASS = "accounts.forms.SignupForm"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email", "phone"}
# Mandatory e-mail verification needs an e-mail at sign-up; a phone may be added with it,
# is verified by SMS code, and can then be used to log in by SMS code.
ACCOUNT_SIGNUP_FIELDS = ["email*", "phone", "password1*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_EMAIL_VERIFICATION_BY_CODE_ENABLED = True
ACCOUNT_LOGIN_BY_CODE_ENABLED = True
ACCOUNT_PASSWORD_RESET_BY_CODE_ENABLED = True
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_MAX_EMAIL_ADDRESSES = 2
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = True
# Adding or removing an e-mail address, or changing the phone, needs the password again
# (POST /_allauth/app/v1/auth/reauthenticate, valid 5 minutes): a stolen access token alone
# cannot take the account over. Changes of address and password are told to the old address.
ACCOUNT_REAUTHENTICATION_REQUIRED = True
# Accounts with no password (Google sign-in only) cannot give it again: for them, erasure
# (POST /api/v1/me/delete) and those changes need a sign-in made this many minutes ago at
# most (accounts/auth.py), else 403 auth.recent_sign_in_required.
RECENT_SIGN_IN_MINUTES = env.int("RECENT_SIGN_IN_MINUTES", default=5)
ACCOUNT_EMAIL_NOTIFICATIONS = True
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "confirm_email": "1/3m/key",
    "reset_password": "20/m/ip,5/m/key",
    # Wrong current passwords also count as failed logins of the account (accounts.adapter).
    "change_password": "5/15m/user",
    "change_phone": "1/m/user",
    "reauthenticate": "10/m/user",
    # One-time codes checked per client address, whichever sessions they are for (allauth's
    # own three tries are per code; accounts.middleware, core.ratelimit).
    "code_check": env.str("CODE_CHECK_RATE_LIMIT", default="30/m/ip"),
    # Password checks of POST /api/v1/me/delete (core.ratelimit).
    "account_delete": "5/15m/user",
    # Personal-data exports (GET /api/v1/me/export): each reads every row about the person.
    "account_export": "10/h/user",
    # Chat messages sent per user (allauth's limiter and rate syntax, see chat.services).
    "chat_send": env.str("CHAT_SEND_RATE_LIMIT", default="30/10s/user,300/5m/user"),
    # Medical files uploaded (each costs storage and a virus scan), and download links asked.
    "records_upload": env.str("RECORDS_UPLOAD_RATE_LIMIT", default="20/m/user,200/h/user"),
    "records_link": env.str("RECORDS_LINK_RATE_LIMIT", default="60/m/user"),
    "records_read": env.str("RECORDS_READ_RATE_LIMIT", default="120/m/user"),
    "records_complete": env.str("RECORDS_COMPLETE_RATE_LIMIT", default="30/m/user"),
    # One-time socket tickets asked for (each reconnection asks for one).
    "realtime_ticket": env.str("REALTIME_TICKET_RATE_LIMIT", default="30/m/user,300/h/user"),
    # Places geocoded by Google (each billed; a cached answer is not counted), per signed-in
    # user, else per client address: directory searches near= and clinic addresses.
    "geocoding": env.str("GEOCODING_RATE_LIMIT", default="10/m/key,100/h/key"),
}
HEADLESS_ONLY = True
HEADLESS_CLIENTS = ("app",)
HEADLESS_TOKEN_STRATEGY = "accounts.tokens.TokenStrategy"
HEADLESS_JWT_PRIVATE_KEY = _required_in_production(
    "JWT_PRIVATE_KEY", lambda: devsecrets.get(VAR_DIR, "jwt_private_key")
).replace("\\n", "\n")
HEADLESS_JWT_ACCESS_TOKEN_EXPIRES_IN = env.int("JWT_ACCESS_TOKEN_TTL", default=300)
HEADLESS_JWT_REFRESH_TOKEN_EXPIRES_IN = env.int("JWT_REFRESH_TOKEN_TTL", default=14 * 86400)
HEADLESS_JWT_ROTATE_REFRESH_TOKEN = True
# Access tokens are checked against their server-side session: logout, password change and
# deactivation end them at once, not when they expire.
HEADLESS_JWT_STATEFUL_VALIDATION_ENABLED = True
HEADLESS_SERVE_SPECIFICATION = True
FRONTEND_URL = env.str("FRONTEND_URL", default="http://localhost:3000")
HEADLESS_FRONTEND_URLS = {
    "account_confirm_email": f"{FRONTEND_URL}/account/verify-email/{{key}}",
    "account_reset_password": f"{FRONTEND_URL}/account/password/reset",
    "account_reset_password_from_key": f"{FRONTEND_URL}/account/password/reset/{{key}}",
    "account_signup": f"{FRONTEND_URL}/account/signup",
    "socialaccount_login_error": f"{FRONTEND_URL}/account/provider/callback",
}
GOOGLE_CLIENT_ID = env.str("GOOGLE_CLIENT_ID", default="")
SOCIALACCOUNT_PROVIDERS = {
    "google": {
        "APPS": [
            {"client_id": GOOGLE_CLIENT_ID, "secret": env.str("GOOGLE_CLIENT_SECRET", default="")}
        ]
        if GOOGLE_CLIENT_ID
        else [],
        "SCOPE": ["openid", "email", "profile"],
        "OAUTH_PKCE_ENABLED": True,
        "CERTS_URL": env.str(
            "GOOGLE_CERTS_URL", default="https://www.googleapis.com/oauth2/v1/certs"
        ),
    }
}
SOCIALACCOUNT_ADAPTER = "accounts.adapter.SocialAccountAdapter"
SOCIALACCOUNT_EMAIL_AUTHENTICATION = True
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = True

OTP_TOTP_ISSUER = "Telemed"
# The admin site never shows a TOTP secret (nor its QR code) after enrolment: whoever
# could read another staff member's could pass that member's second factor.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# Whether an online payment provider is wired (the payments module): until then a doctor
# cannot require online payment (every video or chat booking would be held, then expire).
ONLINE_PAYMENTS_ENABLED = env.bool("ONLINE_PAYMENTS_ENABLED", default=False)

# SMS: "console" (prints), "capture" (tests), or "twilio" (TWILIO_* below).
SMS_PROVIDER = env.str("SMS_PROVIDER", default="console")
# Seconds the SMS provider's API may take to answer.
SMS_TIMEOUT = env.float("SMS_TIMEOUT", default=10.0)
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_FROM_NUMBER = env.str("TWILIO_FROM_NUMBER", default="")
TWILIO_API_BASE_URL = env.str("TWILIO_API_BASE_URL", default="")  # tests point the SDK at a stub
# The public URL of /api/v1/realtime/twilio/status: sent with each message, and the URL
# Twilio's signature is checked against (behind a proxy the request's own URL differs).
TWILIO_STATUS_CALLBACK_URL = env.str("TWILIO_STATUS_CALLBACK_URL", default="")
# The console SMS provider and e-mail backend print phone numbers, login codes and message
# bodies to the logs: production refuses them unless a local demo opts in.
# e.g. records.W002 when the worker shares the server's disk (manage.py check --deploy)
SILENCED_SYSTEM_CHECKS = _env_list("SILENCED_SYSTEM_CHECKS", default=[])
ALLOW_CONSOLE_DELIVERY = env.bool("ALLOW_CONSOLE_DELIVERY", default=False)
if SMS_PROVIDER not in {"console", "capture", "twilio"}:
    raise ImproperlyConfigured("SMS_PROVIDER must be console, capture or twilio")
if PRODUCTION:
    # Backends that drop every code and e-mail (kept in memory, or nowhere).
    if SMS_PROVIDER == "capture":
        raise ImproperlyConfigured("SMS_PROVIDER=capture (tests) sends nothing: not in production")
    if EMAIL_BACKEND.rsplit(".", 2)[-2] in {"locmem", "dummy", "filebased"}:
        raise ImproperlyConfigured(
            f"EMAIL_BACKEND {EMAIL_BACKEND} sends nothing: not in production"
        )
    _twilio = (TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM_NUMBER)
    if SMS_PROVIDER == "twilio" and not all(_twilio):
        raise ImproperlyConfigured(
            "SMS_PROVIDER=twilio needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM_NUMBER"
        )
if PRODUCTION and not ALLOW_CONSOLE_DELIVERY:
    if SMS_PROVIDER == "console":
        raise ImproperlyConfigured(
            "SMS_PROVIDER=console prints messages to the logs: set SMS_PROVIDER=twilio in "
            "production (or ALLOW_CONSOLE_DELIVERY=true for a local demo)"
        )
    if EMAIL_BACKEND == "django.core.mail.backends.console.EmailBackend":
        raise ImproperlyConfigured(
            "the console e-mail backend prints e-mails to the logs: set EMAIL_URL or "
            "EMAIL_BACKEND in production (or ALLOW_CONSOLE_DELIVERY=true for a local demo)"
        )

# --- Internationalisation -------------------------------------------------------------
LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("ar", _("Arabic"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- HTTP and security ----------------------------------------------------------------
# The largest request body on any path, API or not (core/bodylimit.py); API_BODY_LIMITS
# names the larger exceptions.
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
CORS_ALLOWED_ORIGINS = _env_list("CORS_ALLOWED_ORIGINS", default=[])
CORS_ALLOW_HEADERS = (
    "accept",
    "accept-language",
    "authorization",
    "content-type",
    "idempotency-key",
    "x-request-id",
    "x-session-token",
    "x-csrftoken",
)
CORS_EXPOSE_HEADERS = ("x-request-id", "retry-after", "etag")
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS", default=CORS_ALLOWED_ORIGINS)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_ENGINE = "core.sessions"  # cached_db, working on when Redis is away
if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    # No SECURE_PROXY_SSL_HEADER: Django would take X-Forwarded-Proto from any client. The
    # ASGI server sets the scheme from it, for FORWARDED_ALLOW_IPS only (--proxy-headers).
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- Directory ----------------------------------------------------------------------
# Geocoding: Google Maps when a key is set (answers cached), else an offline gazetteer.
GOOGLE_MAPS_API_KEY = env.str("GOOGLE_MAPS_API_KEY", default="")
GOOGLE_MAPS_BASE_URL = env.str("GOOGLE_MAPS_BASE_URL", default="")
GEOCODING_CACHE_SECONDS = env.int("GEOCODING_CACHE_SECONDS", default=30 * 86400)

# --- Bookings -------------------------------------------------------------------------
REMINDER_OFFSETS_MINUTES = env.list("REMINDER_OFFSETS_MINUTES", cast=int, default=[24 * 60, 60])
AUTO_COMPLETE_AFTER_HOURS = env.int("AUTO_COMPLETE_AFTER_HOURS", default=6)
CARE_RELATIONSHIP_DAYS = env.int("CARE_RELATIONSHIP_DAYS", default=90)
# Active appointments not yet over a patient may hold, in all and with one doctor (409
# booking.too_many_upcoming): one account cannot take every free slot of a doctor.
BOOKING_MAX_UPCOMING = env.int("BOOKING_MAX_UPCOMING", default=20)
BOOKING_MAX_UPCOMING_PER_DOCTOR = env.int("BOOKING_MAX_UPCOMING_PER_DOCTOR", default=8)

# --- Chat -----------------------------------------------------------------------------
CHAT_EDIT_WINDOW_SECONDS = env.int("CHAT_EDIT_WINDOW_SECONDS", default=900)
CHAT_NOTIFY_INTERVAL_SECONDS = env.int("CHAT_NOTIFY_INTERVAL_SECONDS", default=300)

# --- Real-time gateway and notifications ---------------------------------------------
REALTIME_TICKET_SECONDS = env.int("REALTIME_TICKET_SECONDS", default=30)
REALTIME_MAX_MESSAGE_BYTES = env.int("REALTIME_MAX_MESSAGE_BYTES", default=16384)
REALTIME_MESSAGES_PER_SECOND = env.int("REALTIME_MESSAGES_PER_SECOND", default=10)
REALTIME_MESSAGE_BURST = env.int("REALTIME_MESSAGE_BURST", default=30)
REALTIME_FLOOD_CLOSE_AFTER = env.int("REALTIME_FLOOD_CLOSE_AFTER", default=50)
# Sockets one user may hold open on one server process (past it: close 4409).
REALTIME_MAX_SOCKETS_PER_USER = env.int("REALTIME_MAX_SOCKETS_PER_USER", default=10)
REALTIME_RESUME_LIMIT = env.int("REALTIME_RESUME_LIMIT", default=500)
REALTIME_REDIS_CHECK_SECONDS = env.float("REALTIME_REDIS_CHECK_SECONDS", default=1.0)
REALTIME_ACCESS_CHECK_SECONDS = env.float("REALTIME_ACCESS_CHECK_SECONDS", default=60.0)
PRESENCE_TTL_SECONDS = env.int("PRESENCE_TTL_SECONDS", default=60)
# How often each server looks for users whose devices ran out (0: a quarter of the TTL).
PRESENCE_SWEEP_SECONDS = env.float("PRESENCE_SWEEP_SECONDS", default=0)
# Short: a counter a lost Redis write left wrong is right again within this time at worst.
UNREAD_CACHE_SECONDS = env.int("UNREAD_CACHE_SECONDS", default=300)
DELIVERY_MAX_ATTEMPTS = env.int("DELIVERY_MAX_ATTEMPTS", default=5)
# Deliveries sent by one task (a fan-out to 500 users is 20 task rows, not 500).
DELIVERY_BATCH = env.int("DELIVERY_BATCH", default=25)
# A delivery still `sending` after this long lost its worker mid-send: recorded `failed`.
DELIVERY_SENDING_TIMEOUT_SECONDS = env.int("DELIVERY_SENDING_TIMEOUT_SECONDS", default=600)
# A task still running this long after it started has lost its worker (core/reclaim.py).
TASK_RUNNING_TIMEOUT_SECONDS = env.int("TASK_RUNNING_TIMEOUT_SECONDS", default=1800)
DELIVERY_RETRY_BACKOFF_SECONDS = env.float("DELIVERY_RETRY_BACKOFF_SECONDS", default=30)
DELIVERY_RETRY_MAX_BACKOFF_SECONDS = env.float("DELIVERY_RETRY_MAX_BACKOFF_SECONDS", default=3600)
# Notifications (with their deliveries) and finished task rows are deleted after this long.
NOTIFICATION_RETENTION_DAYS = env.int("NOTIFICATION_RETENTION_DAYS", default=365)
TASK_RESULT_RETENTION_DAYS = env.int("TASK_RESULT_RETENTION_DAYS", default=7)

# --- Audit ----------------------------------------------------------------------------
AUDIT_TRUSTED_PROXY_COUNT = env.int("AUDIT_TRUSTED_PROXY_COUNT", default=0)
# allauth's per-IP rate limits read the client's address by the same rule (the account
# adapter's get_client_ip): without it, behind a proxy every client would share the proxy's
# address, and one limit site-wide.
MONGODB_URI = env.str("MONGODB_URI", default="")
MONGODB_DB = env.str("MONGODB_DB", default="telemed")

# --- Operations -----------------------------------------------------------------------
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_context": {"()": "telemed.logging.RequestContextFilter"},
        # Secrets in URLs (a calendar feed's token): on the handlers for whatever logger, and
        # on the loggers that write paths, so that every handler of theirs gets them redacted.
        "redact_secrets": {"()": "core.logs.RedactSecretsFilter"},
        "as_warning": {"()": "core.logs.AsWarningFilter"},
    },
    "formatters": {
        "json": {"()": "telemed.logging.JsonFormatter"},
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["redact_secrets", "request_context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's request logger repeats what our access log says, with the full URL.
        "django.request": {"level": "ERROR", "filters": ["redact_secrets"]},
        # runserver's request lines, through the console handler like everything else
        "django.server": {"filters": ["redact_secrets"], "propagate": True},
        "django.security.DisallowedHost": {"filters": ["as_warning"]},
        "django.channels.server": {"level": "WARNING", "filters": ["redact_secrets"]},
        "daphne": {"level": "WARNING"},
        # uvicorn configures its own plain-text handlers before Django starts: these entries
        # take them off, so its lines (start-up, invalid requests, tracebacks) go through the
        # console handler (JSON, redacted) like everything else.
        "uvicorn": {"level": "INFO", "propagate": True},
        "uvicorn.error": {"level": "INFO", "propagate": True},
        "uvicorn.access": {"level": "WARNING", "filters": ["redact_secrets"], "propagate": True},
        "twilio.http_client": {"level": "WARNING"},
        # At DEBUG urllib3 logs whole URLs, which carry API keys and search text.
        "urllib3": {"level": "INFO"},
    },
}
