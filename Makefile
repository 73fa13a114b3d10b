# The two commands of the README: `make run` and `make test`. Both work on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/etcdmonitor
TEST_DATA_DIR ?= $(CURDIR)/.test-data

.PHONY: run test test-system lint bench venv system-deps services clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

system-deps:
	scripts/ensure-system-deps.sh

services:
	scripts/ensure-system-deps.sh --with-services
	scripts/ensure-services.sh

run: venv system-deps
	scripts/run.sh

test: venv services
	DATABASE_URL=$(TEST_DATABASE_URL) DATA_DIR=$(TEST_DATA_DIR) $(PY) -m pytest -m "not system"

test-system: venv services
	DATABASE_URL=$(TEST_DATABASE_URL) DATA_DIR=$(TEST_DATA_DIR) $(PY) -m pytest -m system

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf .test-data staticfiles
