# Taming Unstable Gradients: set-up, lab, tests, release and benchmarks.
# `make lab` and `make test` are all a fresh machine needs (Python 3.11+ with pip).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.install-stamp
export JUPYTER_CONFIG_PATH := $(CURDIR)/autograde

.PHONY: help setup lab formgrader test test-fast test-e2e lint release release-check check bench clean

help:
	@echo "make lab        install (first time) and open the course in JupyterLab"
	@echo "make formgrader OUT=grading-out   instructors: grade free-text answers by hand"
	@echo "make test       install (first time), lint, run every test"
	@echo "make test-e2e   only the browser tests (JupyterLab in headless Chromium)"
	@echo "make release    regenerate notebooks/ from solutions/"
	@echo "make check NB=path/to/notebook.ipynb   grade one notebook against the full tests"
	@echo "make bench      measure notebook, grading, import and widget speed"

# The install runs again only when pyproject.toml or constraints.txt change.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || { \
	  echo "error: this course needs Python 3.11 or newer; '$(PYTHON)' is $$($(PYTHON) --version 2>&1)."; \
	  echo "       Install a newer Python and run e.g. 'make lab PYTHON=python3.12'."; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || { \
	  echo "error: could not create $(VENV) (on Debian/Ubuntu: apt install python3-venv)."; exit 1; }
	@echo "Installing the course into $(VENV) (first time: a few minutes, torch is large)..."
	@$(BIN)/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
	@$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]' || { \
	  echo "error: pip could not install the course's packages (see the messages above)."; \
	  echo "       Check your network or proxy, then run the same make command again."; exit 1; }
	@touch $(STAMP)

setup: $(STAMP)

# Both add --allow-root when run as root (containers, CI machines); LAB_ARGS go to jupyter lab.
lab: setup
	@test -d notebooks || $(BIN)/python -m autograde release
	$(BIN)/python -m autograde.lab -- $(LAB_ARGS)

OUT ?= grading-out
formgrader: setup
	$(BIN)/python -m autograde.lab --formgrader "$(OUT)" -- $(LAB_ARGS)

lint: setup
	$(BIN)/ruff check .

test: setup lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not e2e" $(PYTEST_ARGS)

test-e2e: setup
	$(BIN)/python -m pytest tests/e2e -m e2e $(PYTEST_ARGS)

release: setup
	$(BIN)/python -m autograde release

release-check: setup
	$(BIN)/python -m autograde release --check

check: setup
	@test -n "$(NB)" || { echo "usage: make check NB=notebooks/01_activations/01_activations.ipynb"; exit 2; }
	$(BIN)/python -m autograde check --keep-warm "$(NB)"

bench: setup
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf .autograde-cache .pytest_cache .ruff_cache
