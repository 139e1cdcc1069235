# The embedding workspace. `make` (or `make help`) lists every target.
# Set-up is automatic: every target depends on `setup`, which creates .venv and installs
# the pinned requirements plus shared/ and every subproject (editable), once per change
# of the requirement files.

.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# A GPU user can install another build, e.g. TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= $(shell cat requirements/torch.txt)
PYTEST_ARGS ?=

# Never wait on the hub: models and datasets resolve locally unless the user says otherwise.
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false
export PYTHONUNBUFFERED := 1

SUBPROJECTS := shared embeddingFT jsonembed ragcun gapfill qa_pipeline
SETUP_INPUTS := $(sort $(wildcard requirements/*.txt) $(wildcard $(addsuffix /pyproject.toml,$(SUBPROJECTS))))
SETUP_KEY := $(shell cat $(SETUP_INPUTS) 2>/dev/null | { cat; echo '$(TORCH_SPEC)'; } | sha1sum | cut -c1-12)
SETUP_STAMP := $(VENV)/.setup-$(SETUP_KEY)

# Config overrides: every lower-case variable given on the make command line
# (`make train-embed batch_size=16 mining.num_negatives=5`) is forwarded as key=value.
# Upper-case variables (EMBED_CONFIG, NPROC, MODEL, ...) belong to make itself.
# guide_name(NAME): $(NAME) if the user set it (command line or environment), else empty. Each mk file
# prefixes its own variables (EMBED_MODEL, QA_EPOCHS, ...) and takes the unprefixed names its guide
# documents through this, so one file's default never leaks into another's.
guide_name = $(if $(filter command line environment environment override,$(origin $(1))),$($(1)))
cli_vars = $(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $(v))),$(v)))
OVERRIDES = $(foreach v,$(cli_vars),$(if $(filter $(v),$(shell printf '%s' '$(v)' | tr 'A-Z' 'a-z')),'$(v)=$($(v))'))

# Paths removed by `make clean` (build and run outputs, never data); subproject files add theirs.
CLEAN_PATHS := .pytest_cache .ruff_cache bench/results/*.tmp

.PHONY: help setup test test-all lint format clean distclean
help: ## Show this help (the default goal)
	@echo "Usage: make <target> [VAR=value ...] [config_key=value ...]"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_.-]+:.*## / {printf "  %-22s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: $(SETUP_STAMP) ## Create .venv and install everything (idempotent)

$(SETUP_STAMP):
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -r requirements/base.txt
	$(PY) -m pip install --quiet --no-deps -r requirements/nodeps.txt
	$(PY) -m pip install --quiet $(foreach p,$(SUBPROJECTS),$(if $(wildcard $(p)/pyproject.toml),-e ./$(p)))
	@rm -f $(VENV)/.setup-*
	@touch $@
	@echo "setup complete: $(VENV)"

test: setup ## Run the fast test suite (not marked slow)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: setup ## Run every test, slow ones included
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup ## Lint with ruff
	$(VENV)/bin/ruff check .

format: setup ## Format with ruff
	$(VENV)/bin/ruff format .

include $(sort $(wildcard mk/*.mk))

clean: ## Remove build and run outputs (never data)
	rm -rf $(CLEAN_PATHS)
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -type d -print0 | xargs -0 rm -rf

distclean: clean ## Also remove the virtual environment
	rm -rf $(VENV)
