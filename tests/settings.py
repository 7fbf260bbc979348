"""Settings for the test suite: the real services of this machine, under names of our own.

PostgreSQL: pytest-django creates and drops ``test_<TEST_DB_NAME>``. Redis: every key this
run writes starts with a prefix unique to the run, and only those keys are deleted at the
end. Each can be pointed elsewhere with the same variables as the app (README).
"""

import os
import tempfile
import uuid

os.environ.setdefault("DJANGO_ENV", "test")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/telemed")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("REDIS_KEY_PREFIX", f"telemed-test-{uuid.uuid4().hex[:12]}")
os.environ.setdefault("TASK_WORKER_IN_PROCESS", "false")
# Race tests hold one connection per thread (the test client keeps connections open).
os.environ.setdefault("DB_POOL_MAX_SIZE", "70")
os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="telemed-test-var-"))
os.environ.setdefault("SECRET_KEY", "test-secret-key-" + uuid.uuid4().hex)
# Two keys: tests rotate between them. Values are fixed so subprocess servers share them.
os.environ.setdefault(
    "FIELD_ENCRYPTION_KEYS",
    "test1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=,test0:Hx4dHBsaGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=",
)

from telemed.settings import *  # noqa: E402,F403

# Hashing strength is not under test here; Argon2 at production cost would dominate the run.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # noqa: S303

# Tests that watch an object die (weak references after gc.collect()) must not race a thread
# that freezes it; tests/platform/test_collector.py runs the rounds itself.
GC_FREEZE_SECONDS = 0.0

# Each /readyz call probes again (tests change what it probes between calls);
# tests/platform/test_health.py tests the reuse itself.
HEALTH_READY_REUSE_SECONDS = 0.0

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]  # noqa: F405

# A database of this run's own, so that concurrent runs on one machine never collide.
DATABASES["default"]["TEST"] = {"NAME": f"test_telemed_{os.getpid()}"}  # noqa: F405
# The payment seam (bookings held until paid) is tested as the payments module will use it;
# tests of the default (no online provider) turn it off.
ONLINE_PAYMENTS_ENABLED = True
