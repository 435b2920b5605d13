# Two commands do all set-up on a fresh machine:
#   make demo   - create .venv, install aiweb, train the demo models, serve on :8000
#   make test   - create .venv, install aiweb with its dev tools, lint, type-check, test
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
# Use the shared datasets when they sit beside the project (as on CI); else aiweb downloads.
SHARED_DATA := $(abspath $(wildcard ../shared/data))
export AIWEB_DATA_HOME ?= $(SHARED_DATA)

.PHONY: install demo serve test lint typecheck unit clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/aiweb demo

serve: install
	$(BIN)/aiweb serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache test-artifacts

# Benchmark: batch-predict job vs the model's predict_proba (results in docs/benchmarks.md)
.PHONY: bench-jobs
bench-jobs: install
	$(BIN)/python -m bench.batch_predict
