"""docker-compose.yml and the Dockerfile agree with the settings.

There is no Docker engine where the suite runs, so the files are read statically: the
compose file with PyYAML (anchors and merge keys resolved, ``${NAME:-default}`` interpolated
with an empty environment, i.e. with the file's own development placeholders), the Dockerfile
line by line. The placeholders are then loaded by the production settings in a subprocess.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from core.crypto import KeyRing
from telemed import settings as app_settings
from tests.procs import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

APP_SERVICES = ("app", "worker", "migrate")  # every process of the app image
STORAGE_AND_CLAMD = (
    "STORAGE_S3_BUCKET",
    "STORAGE_S3_ENDPOINT_URL",
    "STORAGE_S3_ACCESS_KEY_ID",
    "STORAGE_S3_SECRET_ACCESS_KEY",
    "CLAMD_HOST",
    "CLAMD_PORT",
)
# Settings that name another service of the stack, by URL or by host.
URL_SETTINGS = ("DATABASE_URL", "REDIS_URL", "STORAGE_S3_ENDPOINT_URL")
HOST_SETTINGS = ("CLAMD_HOST",)
# Secrets whose default in the file must be an overridable, visibly fake placeholder.
PLACEHOLDER_SECRETS = ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS")


# --- reading the files -----------------------------------------------------------------


def required_in_production() -> list[str]:
    """REQUIRED_IN_PRODUCTION, plus any name settings.py passes to _required_in_production
    without listing it there (the list is what this test and the docs rely on)."""
    source = Path(app_settings.__file__).read_text()
    called = re.findall(r"_required_in_production\(\s*[\"'](\w+)[\"']", source)
    return list(dict.fromkeys([*app_settings.REQUIRED_IN_PRODUCTION, *called]))


_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's variable substitution, with ``env`` (empty: the file's own defaults)."""
    env = env or {}

    def substitute(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("bare")
        op, arg = m.group("op"), m.group("arg") or ""
        current = env.get(name)
        missing = not current if op and op.startswith(":") else current is None
        if op and op.endswith("-") and missing:
            return arg
        if op and op.endswith("?") and missing:
            raise AssertionError(f"compose requires ${name} to be set: {arg}")
        return current or ""

    return _INTERPOLATION.sub(substitute, value)


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), (
        "docker-compose.yml has no services"
    )
    return data


def services() -> dict[str, dict[str, Any]]:
    return load_compose()["services"]


def service_env(name: str) -> dict[str, str]:
    """A service's environment after interpolation (mapping or KEY=VALUE list form)."""
    svc = services().get(name)
    assert svc is not None, f"docker-compose.yml has no service {name!r}"
    assert "env_file" not in svc, f"{name}: settings must be in the file, not in an env_file"
    raw = svc.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    env: dict[str, str] = {}
    for key, value in raw.items():
        assert value is not None, f"{name}: {key} is passed through from the host, not given"
        assert not isinstance(value, bool), f"{name}: {key} must be a string, not YAML {value}"
        env[key] = interpolate(str(value))
    return env


def raw_env_value(service: str, key: str) -> str:
    raw = services()[service].get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw if "=" in item)
    return str(raw[key])


def command_text(svc: dict[str, Any], key: str = "command") -> str:
    value = svc.get(key) or ""
    return " ".join(value) if isinstance(value, list) else str(value)


def command_argv(svc: dict[str, Any]) -> list[str]:
    value = svc.get("command") or []
    return [str(a) for a in value] if isinstance(value, list) else shlex.split(value)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = (pending + stripped).strip()
        pending = ""
        word, _, rest = full.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def exec_form(args: str) -> list[str]:
    assert args.startswith("["), f"not in exec (JSON) form: {args}"
    parsed = json.loads(args)
    assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed)
    return parsed


def asgi_app_in(argv: list[str]) -> str:
    """The ``module:attribute`` argument of a server command line, as a dotted path."""
    targets = [a for a in argv[1:] if not a.startswith("-") and re.fullmatch(r"[\w.]+:\w+", a)]
    assert len(targets) == 1, f"no single module:attribute application in {argv}"
    return targets[0].replace(":", ".")


# --- compose: what the app processes are given ----------------------------------------


def test_every_setting_production_requires_is_given_to_app_and_worker():
    required = required_in_production()
    assert set(app_settings.REQUIRED_IN_PRODUCTION) <= set(required) and required
    for name in APP_SERVICES:
        env = service_env(name)
        missing = [key for key in required if not env.get(key, "").strip()]
        assert not missing, f"{name} lacks {missing}"


def test_app_processes_run_in_production_mode():
    for name in APP_SERVICES:
        env = service_env(name)
        assert env.get("DJANGO_ENV") == "production", f"{name}: DJANGO_ENV is not production"
        assert env.get("DEBUG", "false").lower() in {"false", "0", "no", "off", ""}, name


def test_storage_is_s3_and_clamd_is_configured():
    for name in APP_SERVICES:
        env = service_env(name)
        assert env.get("STORAGE_BACKEND") == "s3", f"{name}: STORAGE_BACKEND is not s3"
        missing = [key for key in STORAGE_AND_CLAMD if not env.get(key, "").strip()]
        assert not missing, f"{name} lacks {missing}"
        assert env["CLAMD_PORT"].isdigit(), f"{name}: CLAMD_PORT is not a port number"


def test_app_worker_and_migrate_share_one_environment():
    app = service_env("app")
    for name in APP_SERVICES[1:]:
        other = service_env(name)
        differing = sorted(k for k in app.keys() | other.keys() if app.get(k) != other.get(k))
        assert not differing, f"app and {name} differ in {differing}"


def test_hosts_named_by_settings_are_services_of_the_stack():
    defined = set(services())
    env = service_env("app")
    hosts: dict[str, str | None] = {key: urlsplit(env[key]).hostname for key in URL_SETTINGS}
    hosts.update({key: env[key] for key in HOST_SETTINGS})
    # Any other URL or host setting added later is held to the same rule.
    for key, value in env.items():
        if key not in hosts and key.endswith("_URL") and "://" in value:
            hosts[key] = urlsplit(value).hostname
        elif key not in hosts and key.endswith("_HOST"):
            hosts[key] = value
    unknown = {key: host for key, host in hosts.items() if host not in defined}
    assert not unknown, f"hosts that are not compose services: {unknown}"


def test_database_url_matches_the_postgres_service():
    url = urlsplit(service_env("app")["DATABASE_URL"])
    assert url.scheme in {"postgres", "postgresql", "pgsql"}, url.scheme
    assert url.hostname is not None
    db = service_env(url.hostname)
    assert unquote(url.username or "") == db.get("POSTGRES_USER", "postgres")
    assert unquote(url.password or "") == db.get("POSTGRES_PASSWORD")
    assert url.path.lstrip("/") == db.get("POSTGRES_DB", db.get("POSTGRES_USER", "postgres"))
    assert (url.port or 5432) == 5432


def test_s3_settings_match_the_minio_service_and_its_bucket():
    env = service_env("app")
    host = urlsplit(env["STORAGE_S3_ENDPOINT_URL"]).hostname
    assert host is not None
    minio = service_env(host)
    assert env["STORAGE_S3_ACCESS_KEY_ID"] == minio.get("MINIO_ROOT_USER")
    assert env["STORAGE_S3_SECRET_ACCESS_KEY"] == minio.get("MINIO_ROOT_PASSWORD")
    assert "minio-init" in services(), "no one-shot service creates the bucket"
    init = services()["minio-init"]
    assert re.search(rf"\bmb\b.*/{re.escape(env['STORAGE_S3_BUCKET'])}\b", command_text(init)), (
        "minio-init does not create the bucket the app uses"
    )


def test_secrets_are_overridable_placeholders_marked_development_only():
    secrets = {"SECRET_KEY", "FIELD_ENCRYPTION_KEYS", *required_in_production()} - {
        "ALLOWED_HOSTS",
        "DATABASE_URL",
        "REDIS_URL",
    }
    for key in sorted(secrets):
        raw = raw_env_value("app", key)
        assert re.fullmatch(rf"\$\{{{key}:-[^}}]+\}}", raw), (
            f"{key} must be written ${{{key}:-placeholder}} so a real value overrides it"
        )
    for key in PLACEHOLDER_SECRETS:
        value = interpolate(raw_env_value("app", key)).lower()
        assert "dev" in value, f"{key}'s placeholder is not marked dev-only"


def test_field_encryption_keys_placeholder_decodes():
    ring = KeyRing.parse(service_env("app")["FIELD_ENCRYPTION_KEYS"])
    assert ring.current_id in ring.keys


def test_placeholders_pass_the_production_settings_validation(tmp_path: Path):
    """Settings import with the compose environment; it validates and must not connect."""
    code = (
        "import json, socket\n"
        "def refuse(*args, **kwargs):\n"
        "    raise RuntimeError(f'settings import tried to reach the network: {args}')\n"
        "socket.socket.connect = refuse\n"
        "socket.getaddrinfo = refuse\n"
        "import django\n"
        "django.setup()\n"
        "from django.conf import settings as s\n"
        "from django.core.files.storage import storages\n"
        "from core import crypto\n"
        "crypto.keyring()\n"
        "jwt_key = getattr(s, 'HEADLESS_JWT_PRIVATE_KEY', None)\n"
        "if jwt_key:\n"
        "    from cryptography.hazmat.primitives.serialization import load_pem_private_key\n"
        "    load_pem_private_key(jwt_key.encode(), password=None)\n"
        "print(json.dumps({'production': s.PRODUCTION, 'debug': s.DEBUG,\n"
        "    'engine': s.DATABASES['default']['ENGINE'], 'storage': type(storages['default']).__name__,\n"
        "    'clamd': [s.CLAMD_HOST, s.CLAMD_PORT], 'worker_in_process': s.TASK_WORKER_IN_PROCESS}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR"}}
    env.update(service_env("app"))
    env.update(DJANGO_SETTINGS_MODULE="telemed.settings", VAR_DIR=str(tmp_path))
    r = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got == {
        "production": True,
        "debug": False,
        "engine": "django.db.backends.postgresql",
        "storage": "S3Storage",
        "clamd": [service_env("app")["CLAMD_HOST"], int(service_env("app")["CLAMD_PORT"])],
        "worker_in_process": False,
    }


def test_worker_runs_the_task_worker_and_migrate_migrates():
    svc = services()
    worker = command_argv(svc["worker"])
    assert worker[1:3] == ["manage.py", "db_worker"], worker
    assert "--queue-name" in worker and worker[worker.index("--queue-name") + 1] == "*", worker
    assert "manage.py migrate" in command_text(svc["migrate"]), "migrate does not migrate"


def test_app_processes_wait_for_healthy_services_and_migrations():
    svc = services()
    env = service_env("app")
    backing = {urlsplit(env[key]).hostname for key in URL_SETTINGS}
    for name in ("app", "worker"):
        depends = svc[name].get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        # clamd's first start downloads signatures for minutes; nothing but scans needs it.
        assert depends.get(env["CLAMD_HOST"], {}).get("condition") == "service_started"
        for dep in backing:
            assert dep is not None
            assert depends.get(dep, {}).get("condition") == "service_healthy", (
                f"{name} does not wait for {dep} to be healthy"
            )
            assert svc[dep].get("healthcheck", {}).get("test"), f"{dep} has no healthcheck"
        for once in ("migrate", "minio-init"):
            assert depends.get(once, {}).get("condition") == "service_completed_successfully", (
                f"{name} does not wait for {once} to finish"
            )


def test_app_service_serves_the_settings_asgi_application():
    app = services()["app"]
    if app.get("command"):  # otherwise it runs the image's CMD, checked below
        assert asgi_app_in(command_argv(app)) == app_settings.ASGI_APPLICATION
    assert app.get("build") or app.get("image"), "app has neither build nor image"


# --- Dockerfile ---------------------------------------------------------------------------


def test_dockerfile_installs_the_hash_pinned_lock():
    steps = dockerfile_instructions()
    assert steps[0][0] in {"FROM", "ARG"}
    assert any(w == "FROM" and a.startswith("python:3.11-slim") for w, a in steps), "base image"
    installs = [
        i for i, (w, a) in enumerate(steps) if w == "RUN" and re.search(r"\bpip install\b", a)
    ]
    assert installs, "no pip install step"
    for i in installs:
        args = shlex.split(steps[i][1])
        assert "--require-hashes" in args, steps[i][1]
        assert "--no-deps" in args, steps[i][1]
        assert "-r" in args and args[args.index("-r") + 1] == "requirements.lock", steps[i][1]
    copies = [
        i for i, (w, a) in enumerate(steps) if w == "COPY" and "requirements.lock" in a.split()
    ]
    assert copies and copies[0] < installs[0], "requirements.lock is not copied before install"


def test_dockerfile_cmd_serves_the_settings_asgi_application():
    cmds = [a for w, a in dockerfile_instructions() if w == "CMD"]
    assert cmds, "no CMD"
    argv = exec_form(cmds[-1])
    assert argv[0] == "uvicorn", argv
    assert asgi_app_in(argv) == app_settings.ASGI_APPLICATION
    for flag in ("--proxy-headers", "--no-access-log"):
        assert flag in argv, f"{flag} missing from {argv}"
    assert argv[argv.index("--host") + 1] == "0.0.0.0" and argv[argv.index("--port") + 1] == "8000"
    assert argv[argv.index("--lifespan") + 1] == "off"


def test_dockerfile_builds_messages_and_static_files_and_runs_unprivileged():
    steps = dockerfile_instructions()
    runs = " ".join(a for w, a in steps if w == "RUN")
    assert "manage.py compilemessages_py" in runs
    assert "manage.py collectstatic" in runs
    assert re.search(r"\bSTATIC_ROOT=/\S+", " ".join(a for w, a in steps if w == "ENV"))
    users = [a for w, a in steps if w == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the image runs as root"
    exposed = {p.split("/")[0] for w, a in steps if w == "EXPOSE" for p in a.split()}
    assert "8000" in exposed


def test_dockerfile_healthcheck_asks_healthz_with_python():
    checks = [a for w, a in dockerfile_instructions() if w == "HEALTHCHECK"]
    assert checks, "no HEALTHCHECK"
    _, _, cmd = checks[-1].partition("CMD")
    assert cmd.strip(), checks[-1]
    argv = exec_form(cmd.strip())
    assert argv[0].startswith("python"), argv
    assert "/healthz" in " ".join(argv) and ":8000/" in " ".join(argv), argv


def test_dockerignore_keeps_local_state_out_of_the_image():
    ignored = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    # var/ holds development secrets (var/dev-secrets.json) and the SQLite database.
    for path in (".git", ".venv", "var", ".env"):
        assert path in ignored, f"{path} is not in .dockerignore"


def test_interpolation_helper_follows_compose_rules():
    assert interpolate("${A:-x}") == "x"
    assert interpolate("${A:-x}", {"A": "y"}) == "y"
    assert interpolate("${A-x}", {"A": ""}) == ""
    assert interpolate("$${A}") == "${A}"
    assert base64.b64decode(interpolate("${K:-AAAA}")) == b"\0\0\0"
