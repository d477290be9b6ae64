# One task runner for people and CI. `make demo` and `make test` work on a fresh clone.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
ROWS ?= 5000

.PHONY: demo test lint format bench clean

$(VENV)/bin/python:
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

## demo: install into .venv and run a full offline persona run on generated sample data
demo: $(VENV)/.installed
	$(VENV)/bin/apg sample --rows $(ROWS) --seed 0 --out demo/users.csv
	$(VENV)/bin/apg run --config configs/demo.yaml --out demo/output
	@echo "open demo/output/report.html (also report.md, personas.json, candidates.csv, assignments.csv); review: $(VENV)/bin/apg serve"

## test: install dev dependencies into .venv, lint, run the test suite
test: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check apg tests benchmarks scripts
	$(VENV)/bin/ruff format --check apg tests benchmarks scripts
	$(PY) -m pytest

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check apg tests benchmarks scripts

format: $(VENV)/.installed-dev
	$(VENV)/bin/ruff format apg tests benchmarks
	$(VENV)/bin/ruff check --fix apg tests benchmarks

bench: $(VENV)/.installed-dev
	$(PY) benchmarks/search_vs_naive.py --rows 5000

clean:
	rm -rf demo apg-output .pytest_cache .ruff_cache
