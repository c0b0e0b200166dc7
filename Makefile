# billsync — every target installs what it needs itself and is safe to run again.
SHELL := /bin/bash
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help setup check test test-unit soak demo demo-down stack-up stack-down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install billsync with its dev tools

check: setup ## lint (ruff), type-check (mypy) and the layer contracts (import-linter)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

test-unit: setup ## unit tests only (no services)
	$(BIN)/pytest -m "not integration and not e2e and not chaos and not replay and not soak"

test: setup ## every test tier; the integration fixture installs and starts the local stack
	$(BIN)/pytest

# the soak tier's halves: SOAK=stall (loaded flow runs), SOAK=registry (new connectors'
# schema POSTs); unset, both
SOAK_stall := tests/soak/test_stall_rate.py
SOAK_registry := tests/soak/test_registry_hang_rate.py

soak: setup ## RUNS (default 30) runs of each half, SOAK=stall or SOAK=registry for one; a stall, heal or late connector fails a run
	@test -z "$(SOAK)" -o -n "$(SOAK_$(SOAK))" || { echo "SOAK=$(SOAK): use stall or registry"; exit 2; }
	$(BIN)/pytest $(or $(SOAK_$(SOAK)),tests/soak) --soak-runs $(or $(RUNS),30) -s

demo: setup ## the whole pipeline on the local stack and a live billing story
	$(BIN)/billsync demo

demo-down: setup ## stop the demo's flow and the local stack
	$(BIN)/billsync demo down

stack-up: setup ## install (apt + Maven, once) and start the local stack; idempotent
	$(BIN)/billsync stack up

stack-down: setup ## stop the local stack's processes (data kept; add --purge via the CLI)
	$(BIN)/billsync stack down

clean: ## remove the venv and caches (not the stack: see `billsync stack down --purge`)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
