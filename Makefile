# The two commands a newcomer needs: `make run` and `make test` (see README.md).
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
UV_VERSION := 0.13.9

.PHONY: setup setup-dev run worker test lint fuzz bench lock clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(BIN)/uv: | $(BIN)/python
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"

$(VENV)/.installed: requirements.lock | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python --require-hashes -r requirements.lock
	touch $@

$(VENV)/.installed-dev: requirements-dev.lock | $(BIN)/uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python --require-hashes -r requirements-dev.lock
	touch $@

setup: $(VENV)/.installed
	$(BIN)/python manage.py compilemessages_py

setup-dev: $(VENV)/.installed-dev setup

## Set up and run the server on the embedded defaults (SQLite, in-memory channel layer,
## local files), with the task worker inside the server process and the demo data loaded.
run: setup
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py schedule_housekeeping
	@echo "API docs: http://$(HOST):$(PORT)/api/v1/docs"
	$(BIN)/daphne -b $(HOST) -p $(PORT) --access-log /dev/null telemed.asgi:application

## A separate task worker (only when REDIS_URL is set; otherwise it runs inside `make run`).
worker: setup
	$(BIN)/python manage.py schedule_housekeeping
	$(BIN)/python manage.py db_worker --queue-name '*'

## Set up and run the whole suite against real PostgreSQL, Redis, clamd and an S3 endpoint.
test: setup-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

## Property-based API fuzzing of our own OpenAPI spec against a running server.
fuzz: setup-dev
	bash scripts/fuzz.sh

bench: setup-dev
	$(BIN)/python bench/http_baseline.py

## Re-resolve the pinned dependencies after editing pyproject.toml.
lock: | $(BIN)/uv
	$(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 pyproject.toml -o requirements.lock
	$(BIN)/uv pip compile --quiet --generate-hashes --python-version 3.11 --extra dev pyproject.toml -o requirements-dev.lock

clean:
	rm -rf $(VENV) var
