# Two commands for a fresh Debian-like machine with Python 3.11 (root or sudo for system packages):
#   make run    set up, then start the app on http://127.0.0.1:7860
#   make test   set up (plus test tools and Chromium), then run the whole test suite
# Both are idempotent: each step is skipped when its stamp is newer than what it depends on.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_RUN := wordnet-base wordnet-sense-index opencv-doc
APT_TEST := chromium fonts-dejavu-core
ARGS ?=

.PHONY: run test setup setup-dev system system-test clean

run: setup
	$(BIN)/python app.py $(ARGS)

test: setup-dev
	$(BIN)/python -m pytest $(ARGS)

setup: system $(VENV)/.runtime

setup-dev: setup system-test $(VENV)/.dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.runtime: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.dev: requirements-dev.txt $(VENV)/.runtime
	$(BIN)/python -m pip install -r requirements-dev.txt
	touch $@

# System packages: WordNet 3.0 for negative-label mining; Chromium for the browser tests.
system:
	@./.ci/apt-ensure $(APT_RUN)

system-test:
	@./.ci/apt-ensure $(APT_TEST)

clean:
	rm -rf $(VENV) .pytest_cache
