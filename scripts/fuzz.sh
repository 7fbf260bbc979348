#!/usr/bin/env bash
# `make fuzz`: property-based fuzzing of our own OpenAPI document against a real server.
#
# Creates a PostgreSQL database of its own and migrates it, starts our ASGI server (Uvicorn,
# as production runs it: Daphne's Twisted parses multipart bodies itself and answers a
# malformed one with a bare 400 before the application sees it) on a free loopback port
# with its own Redis key prefix, and runs Schemathesis with every check (no 5xx, responses
# and status codes and content types as documented, ...) once per role, within a fixed time
# budget. Prints, per operation, whether any request got a 2xx.
# At the end (trap) it stops the server, drops the database and deletes only its own Redis
# keys. Exits non-zero if Schemathesis found a failure.
#
# Environment knobs:
#   FUZZ_MAX_TIME      seconds of fuzzing for all roles together (default 160)
#   FUZZ_MAX_EXAMPLES  test cases per operation and pass (default 100)
#   FUZZ_SEED          replay a run (Schemathesis prints the seed it used)
#   FUZZ_REPORT_DIR    keep the NDJSON/JUnit reports there (default: removed at the end)
#   FUZZ_REDIS_URL     Redis to use (default redis://127.0.0.1:6379/0)
#   PGHOST PGPORT PGUSER  PostgreSQL to create the database on (default 127.0.0.1 5432 postgres)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="$PWD/.venv/bin"
CONFIG="$PWD/scripts/schemathesis.toml"
export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
RUN_ID=$$
DB_NAME="telemed_fuzz_${RUN_ID}"
KEY_PREFIX="telemed-fuzz-${RUN_ID}"
FUZZ_REDIS_URL="${FUZZ_REDIS_URL:-redis://127.0.0.1:6379/0}"
MAX_TIME="${FUZZ_MAX_TIME:-160}"
MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-100}"

# Every check runs except positive_data_acceptance: it counts any 4xx to a schema-valid
# request as a failure, but business rules that OpenAPI cannot express (a time zone that
# exists, a date of birth in the past, a cursor this server signed) rightly answer 422/400
# with the documented envelope. Schema-violating requests must still be refused
# (negative_data_rejection), and nothing may answer 5xx or contradict the spec.
#
# The roles the API is fuzzed as, each with its own Schemathesis run. Admin goes last: its
# run may deactivate or re-role the other fuzz users.
ROLES=(anonymous patient doctor admin)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/telemed-fuzz.XXXXXX")"
REPORT_DIR="${FUZZ_REPORT_DIR:-$WORK/reports}"
mkdir -p "$REPORT_DIR"
REPORT_DIR="$(cd "$REPORT_DIR" && pwd)"
SERVER_PID=""
DB_CREATED=""

cleanup() {
  local status=$?
  set +e
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID"
    for _ in $(seq 1 50); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  if [ -n "$DB_CREATED" ]; then
    dropdb --if-exists --force "$DB_NAME" || echo "fuzz: could not drop database $DB_NAME" >&2
  fi
  "$BIN/python" - "$FUZZ_REDIS_URL" "$KEY_PREFIX" <<'PY' || echo "fuzz: could not delete the Redis keys of $KEY_PREFIX" >&2
import re
import sys

import redis

url, prefix = sys.argv[1:3]
client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
# Every key the server wrote starts with "<REDIS_KEY_PREFIX>:" (cache and channel layer).
pattern = re.sub(r"([\\*?\[\]])", r"\\\1", prefix) + ":*"
keys = list(client.scan_iter(match=pattern, count=1000))
for start in range(0, len(keys), 500):
    client.delete(*keys[start : start + 500])
client.close()
PY
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A role's bearer token, printed on stdout: a user of that role in the fuzz database,
# logged in through the running server.
token_for() {
  "$BIN/python" scripts/fuzz_token.py "$BASE" "$1"
}

# The server's environment, and that of the migration: the real services under names of
# this run only. A fresh VAR_DIR gives it development secrets of its own.
export DJANGO_SETTINGS_MODULE=telemed.settings
export DJANGO_ENV=development
export DEBUG=false
export DATABASE_URL="postgres://${PGUSER}@${PGHOST}:${PGPORT}/${DB_NAME}"
export REDIS_URL="$FUZZ_REDIS_URL"
export REDIS_KEY_PREFIX="$KEY_PREFIX"
export TASK_WORKER_IN_PROCESS=false
export VAR_DIR="$WORK/var"

echo "fuzz: database $DB_NAME, Redis prefix $KEY_PREFIX"
createdb "$DB_NAME"
DB_CREATED=1
"$BIN/python" manage.py migrate --noinput >"$WORK/migrate.log" 2>&1 || {
  cat "$WORK/migrate.log" >&2
  exit 1
}

PORT="$("$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:${PORT}"
"$BIN/uvicorn" --host 127.0.0.1 --port "$PORT" --no-access-log --lifespan off \
  telemed.asgi:application >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

"$BIN/python" - "$BASE" "$SERVER_PID" "$WORK/openapi.json" <<'PY' || { tail -n 50 "$WORK/server.log" >&2; exit 1; }
import os
import sys
import time
import urllib.request

base, pid, spec_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
deadline = time.monotonic() + 30
while True:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit("fuzz: the server exited before answering /healthz")
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=1) as response:
            if response.status == 200:
                break
    except OSError:
        pass
    if time.monotonic() > deadline:
        sys.exit("fuzz: the server did not answer /healthz within 30 s")
    time.sleep(0.2)
with urllib.request.urlopen(base + "/api/v1/openapi.json", timeout=10) as response:
    open(spec_path, "wb").write(response.read())
PY
echo "fuzz: server up at $BASE"

per_role=$((MAX_TIME / ${#ROLES[@]}))
[ "$per_role" -ge 10 ] || per_role=10
failed=()
for role in "${ROLES[@]}"; do
  auth=()
  if [ "$role" != anonymous ]; then
    token="$(token_for "$role")"
    auth=(-H "Authorization: Bearer ${token}")
  fi
  seed=()
  [ -z "${FUZZ_SEED:-}" ] || seed=(--seed "$FUZZ_SEED")
  echo "fuzz: role $role, ${per_role}s"
  # From $WORK: Schemathesis keeps its replay cache in ./.schemathesis, not in the work tree.
  if ! (cd "$WORK" && "$BIN/schemathesis" --config-file "$CONFIG" run "$BASE/api/v1/openapi.json" \
    --checks all \
    --exclude-checks positive_data_acceptance \
    --max-time "$per_role" \
    --max-examples "$MAX_EXAMPLES" \
    --request-timeout 10 \
    --generation-database none \
    --no-color \
    --report ndjson,junit \
    --report-ndjson-path "$REPORT_DIR/$role.ndjson" \
    --report-junit-path "$REPORT_DIR/$role.junit.xml" \
    "${seed[@]}" "${auth[@]}"); then
    failed+=("$role")
  fi
done

reports_ok=1
for role in "${ROLES[@]}"; do
  "$BIN/python" scripts/fuzz_report.py --role "$role" --spec "$WORK/openapi.json" \
    "$REPORT_DIR/$role.ndjson" || reports_ok=""
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: Schemathesis found failures as: ${failed[*]}" >&2
  # The server's errors and 5xx responses, without its access log of the others.
  if grep -vE '"logger": "telemed.access".*"status": [1-4][0-9][0-9]' "$WORK/server.log" \
    | tail -n 60 >"$WORK/server-errors.log" && [ -s "$WORK/server-errors.log" ]; then
    echo "fuzz: the server's last errors:" >&2
    cat "$WORK/server-errors.log" >&2
  fi
  exit 1
fi
[ -n "$reports_ok" ] || exit 1
echo "fuzz: no failures"
