# trainlab: `make run` sets up and starts the service; `make test` sets up and runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The CPU build of torch, installed before the project so the project's range is already met.
TORCH ?= torch==2.13.0

.PHONY: run test lint examples clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/trainlab up

lint: $(STAMP)
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

test: $(STAMP) chromium lint
	$(BIN)/pytest -q -rs

examples: $(STAMP)
	$(BIN)/python -m examples.run_all

clean:
	rm -rf $(VENV) .trainlab .pytest_cache
