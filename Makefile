# Estate: `make demo` runs the embedded estate; `make test` runs everything CI runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint format typecheck pytest assets system-deps migration screenshots clean help chaos

help:
	@echo "make demo    - run the embedded estate at http://127.0.0.1:8000"
	@echo "make test    - install what is needed, then lint, type-check and run the test suite"
	@echo "make lint    - ruff (lint + format check) and mypy"
	@echo "make format  - apply ruff formatting and safe fixes"
	@echo "make screenshots - regenerate docs/screenshots/*.png from a fresh demo"
	@echo "make chaos   - fault injection: broker, ingest, PostgreSQL, TSDB, agent and worker failures"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

node_modules/.installed-stamp: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

assets: node_modules/.installed-stamp

system-deps:
	scripts/install-system-deps

demo: $(STAMP) assets
	$(BIN)/estate demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy fleet agents facilities

typecheck: $(STAMP)
	$(BIN)/mypy fleet agents facilities

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

pytest: $(STAMP) assets system-deps
	$(BIN)/pytest

test: $(STAMP) assets system-deps lint pytest

# Also part of `make test` (pytest collects tests/chaos); this runs the fault injection alone.
chaos: $(STAMP) system-deps
	$(BIN)/pytest tests/chaos -q

screenshots: $(STAMP) assets system-deps
	$(BIN)/python scripts/screenshots.py

migration: $(STAMP)
	scripts/regen-initial-migration

clean:
	rm -rf $(VENV) node_modules var .pytest_cache .mypy_cache .ruff_cache
