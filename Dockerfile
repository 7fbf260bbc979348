# syntax=docker/dockerfile:1
# The production image: one image for the ASGI server (default CMD), the task worker
# (`python manage.py db_worker --queue-name '*'`) and the migration job
# (`python manage.py migrate --noinput`). docker-compose.yml runs all three.
# Every setting comes from the environment at run time; see telemed/settings.py
# (REQUIRED_IN_PRODUCTION) and the README's configuration table.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app

# Dependencies first (their layer is reused while only the code changes). The lock pins
# every distribution by hash, transitive ones included, so nothing is resolved here; wheels
# only, so the image needs no compiler, except googlemaps: PyPI has no wheel of 4.10 (a pure
# Python source archive, built without a compiler).
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps --only-binary=:all: --no-binary=googlemaps -r requirements.lock

COPY . .

# Serve a collected, compressed copy of the static files (WhiteNoise) instead of finding
# them in the installed apps on each request.
ENV DJANGO_SETTINGS_MODULE=telemed.settings \
    STATIC_ROOT=/app/static \
    VAR_DIR=/app/var

# Build steps import the settings in development mode; their throw-away development secrets
# go to a directory that is deleted in the same layer, so none is baked into the image.
RUN VAR_DIR=/tmp/build-var python manage.py compilemessages_py \
    && VAR_DIR=/tmp/build-var python manage.py collectstatic --noinput --verbosity 0 \
    && rm -rf /tmp/build-var \
    && python -m compileall -q /app

# Every process of the image runs in production mode (DEBUG off, required settings checked
# at start) unless told otherwise: one that forgets DJANGO_ENV does not serve debug pages.
# Set after the build steps above, which run in development mode.
ENV DJANGO_ENV=production

# Not root. The code stays owned by root (read-only for the process); only VAR_DIR
# (local media when STORAGE_BACKEND=local) is writable.
RUN groupadd --system --gid 10001 telemed \
    && useradd --system --uid 10001 --gid telemed --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin telemed \
    && mkdir -p /app/var \
    && chown telemed:telemed /app/var
USER 10001:10001

EXPOSE 8000

# Liveness only (/healthz answers while the process lives; /readyz checks the services).
# No curl in the slim image. The Host header is the first ALLOWED_HOSTS entry, since Django
# refuses any other; /healthz is exempt from the HTTPS redirect.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; host = os.environ.get('ALLOWED_HOSTS', 'localhost').split(',')[0].strip().lstrip('.') or 'localhost'; req = urllib.request.Request('http://127.0.0.1:8000/healthz', headers={'Host': host}); sys.exit(0 if urllib.request.urlopen(req, timeout=3).status == 200 else 1)"]

# Uvicorn streams request bodies to the app (Daphne buffers them whole). --proxy-headers
# trusts X-Forwarded-Proto/For only from FORWARDED_ALLOW_IPS (default 127.0.0.1): set it to
# the load balancer's address in production so request.is_secure() sees HTTPS.
# --ws-max-size: a socket message over 64 KiB closes the socket (1009) before it is buffered
# whole (uvicorn's default is 16 MiB); up to it, the app answers messages over
# REALTIME_MAX_MESSAGE_BYTES (16 KiB) with an error event. Raise both together.
CMD ["uvicorn", "telemed.asgi:application", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers", "--no-access-log", "--lifespan", "off", "--ws-max-size", "65536", "--timeout-graceful-shutdown", "25"]
