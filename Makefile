# The two commands of the README: `make run` and `make test`. Both work on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/etcdmonitor
TEST_DATA_DIR ?= $(CURDIR)/.test-data
# etcd 3.5 for `make test-etcd35` (scripts/fetch-etcd35.sh; gitignored).
ETCD35_DIR ?= $(CURDIR)/.etcd35

.PHONY: run test test-etcd35 etcd35 test-system lint bench venv venv-run system-deps services clean

# The C parser (monitoring.metrics uses it; gcc and the Python headers build it).
NATIVE := native/promtext
NATIVE_SOURCES := $(NATIVE)/promtext.c $(NATIVE)/setup.py $(NATIVE)/pyproject.toml

# Two stamps: `make run` needs only the runtime requirements, tests and lint need the dev ones.
$(VENV)/.installed-run: requirements.txt $(NATIVE_SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --force-reinstall --no-deps ./$(NATIVE)
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt $(NATIVE_SOURCES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --force-reinstall --no-deps ./$(NATIVE)
	touch $(VENV)/.installed-run $@

venv-run: $(VENV)/.installed-run

venv: $(VENV)/.installed-dev

system-deps:
	scripts/ensure-system-deps.sh

services:
	scripts/ensure-system-deps.sh --with-services
	scripts/ensure-services.sh

run: venv-run system-deps
	@scripts/run.sh

test: venv services
	DATABASE_URL=$(TEST_DATABASE_URL) DATA_DIR=$(TEST_DATA_DIR) $(PY) -m pytest -m "not system"

etcd35:
	ETCD35_DIR=$(ETCD35_DIR) scripts/fetch-etcd35.sh

# The same fast suite against etcd 3.5 (the fixtures start $(ETCD35_DIR)/bin/etcd).
test-etcd35: venv services etcd35
	ETCD_BIN_DIR=$(ETCD35_DIR)/bin DATABASE_URL=$(TEST_DATABASE_URL) DATA_DIR=$(TEST_DATA_DIR) $(PY) -m pytest -m "not system"

test-system: venv services
	DATABASE_URL=$(TEST_DATABASE_URL) DATA_DIR=$(TEST_DATA_DIR) $(PY) -m pytest -m system

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf .test-data staticfiles .etcd35
