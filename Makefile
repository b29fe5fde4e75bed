# trainlab: `make run` sets up and starts the service; `make test` sets up and runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
# The CPU build of torch, installed before the project so the project's range is already met.
TORCH ?= torch==2.13.0
# The project's own dependencies go in with uv when it can be had (parallel downloads and
# installs: several times faster than pip; benchmarks/setup_time.sh measures it), else with pip.
# torch stays with pip, which knows this machine's CPU wheel. UV=0 forces pip.
UV ?= 1
INSTALL = if [ "$(UV)" = 1 ] && $(BIN)/uv --version >/dev/null 2>&1; then \
	  $(BIN)/uv pip install --quiet --python $(BIN)/python $(1); else $(BIN)/pip install --quiet $(1); fi

.PHONY: setup run test lint examples clean chromium

# `make run`'s set-up: the runtime dependencies only (the test tools come with `make test`).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	[ "$(UV)" != 1 ] || $(BIN)/pip install --quiet uv || echo "uv could not be installed: pip installs the rest"
	$(call INSTALL,-e .)
	touch $(STAMP)

$(DEV_STAMP): $(STAMP)
	$(call INSTALL,-e '.[dev]')
	touch $(DEV_STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/trainlab up

lint: $(DEV_STAMP)
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/mypy

# Headless Chromium for the dashboard tests (Debian packages; needs root, as in CI). Without it
# the browser tests skip outside CI and fail in CI.
chromium:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; \
	  else echo "chromium missing: run 'sudo apt-get install -y chromium chromium-driver' for the dashboard tests"; fi; \
	fi

# The suite on every core, at most 4 processes (each e2e module starts its own API, workers,
# PostgreSQL database and Redis database number); a file's tests stay in one process, so a
# module's services start once. TEST_WORKERS=0 runs it in this process only.
TEST_WORKERS ?= auto
test: $(DEV_STAMP) chromium lint
	$(BIN)/pytest -q -rs -n $(TEST_WORKERS) --maxprocesses 4 --dist loadfile

examples: $(DEV_STAMP)
	$(BIN)/python -m examples.run_all

clean:
	rm -rf $(VENV) .trainlab .pytest_cache
