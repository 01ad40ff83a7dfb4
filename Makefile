# The two commands: `make run` (demo on http://localhost:8000) and `make test` (whole suite).
# Everything else a developer needs is listed by `make help`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt constraints.txt | sha1sum | cut -c1-12)
ARGS ?=
# mypy and ruff import settings but need no database
LINT_ENV := DATABASE_URL=postgres://lint@127.0.0.1:1/lint DJANGO_SETTINGS_MODULE=config.settings.test

.PHONY: help run stop test lint format migrations-check bench bench-smoke screenshots chromium wrk clean venv

help:
	@echo "make run               set up everything and start the demo (web, workers, dispatcher)"
	@echo "make stop              stop a running make run, or whatever a killed one left running"
	@echo "make test [ARGS=...]   set up everything and run the test suite (ARGS go to pytest)"
	@echo "make lint              ruff + mypy"
	@echo "make format            ruff format + import sorting"
	@echo "make migrations-check  fail if models and migrations disagree"
	@echo "make bench             benchmarks -> bench/report.md and bench/report.json"
	@echo "make bench-smoke       the pipeline scenarios at tiny sizes (correctness, run by CI)"
	@echo "make screenshots       PNGs of the admin (start, compose, simulator, inbox) and subscribe page -> docs/screenshots/"
	@echo "make clean             make stop, then delete var/ (embedded database, keys, media)"

venv: $(STAMP)
$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

run: $(STAMP)
	$(PY) -m core.devrun run

# Also cleans up after a kill -9 of make run (see README.md and core/devrun/).
stop:
	@if [ -x $(PY) ]; then $(PY) -m core.devrun stop; fi

test: $(STAMP) chromium
	$(PY) -m core.devrun test $(ARGS)

# Browser tests drive Debian's Chromium (Playwright's own download does not work here).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "installing Debian's chromium for the browser tests …"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(LINT_ENV) $(VENV)/bin/mypy .

format: $(STAMP)
	$(VENV)/bin/ruff check --fix --select I .
	$(VENV)/bin/ruff format .

migrations-check: $(STAMP)
	$(PY) -m core.devrun exec -- $(PY) manage.py makemigrations --check --dry-run

bench: $(STAMP) wrk
	$(PY) -m core.devrun bench -- $(PY) -m bench $(ARGS)

# P4's HTTP client (bench/p4_wrk.lua): Debian's wrk, cheap enough to measure the server
wrk:
	@if ! command -v wrk >/dev/null; then \
		echo "installing Debian's wrk for the webhook benchmark …"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null; \
	fi

# CI: tiny sizes of the pipeline scenarios; fails when a guarantee breaks, ignores speed
bench-smoke: $(STAMP)
	$(PY) -m core.devrun bench -- $(PY) -m bench --smoke --only P1,P2,P4,P5,P6,P9,R1,R2,R3

# Demo data in German through Chromium; not part of CI (the PNGs are committed)
screenshots: $(STAMP) chromium
	$(PY) -m core.devrun exec -- $(PY) -m tests.browser.screenshots

clean: stop
	rm -rf var/ staticfiles/
