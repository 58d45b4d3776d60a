# Two commands on a fresh machine: `make bench` and `make test`. Both create .venv and install
# what is missing first. torch is pinned to the CPU build (pyproject.toml).
#
# Real multilingual text: the harness looks at $HARNESS_TATOEBA, then its download cache;
# `make bench` downloads the sweep's languages once when it has internet (--fetch-corpus), and
# otherwise runs the synthetic cases and skips the language cases with one line saying how to
# get the text. Nothing here looks beside the checkout: CI passes its corpus explicitly.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SWEEP ?= default
ARGS ?=
# Suite repetitions for the perf gate: with >= 2 on both sides, runs (not calls) are the
# replicates, which is what a noisy shared runner needs (README, "CI performance gate").
PERF_REPEAT ?= 1

.PHONY: install bench smoke test lint fmt typecheck perf-check perf-baseline gpu-bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

bench: $(STAMP)
	$(PY) -m harness run --sweep $(SWEEP) --fetch-corpus $(ARGS)

smoke: $(STAMP)
	$(PY) -m harness run --sweep smoke --fetch-corpus $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check harness tests bench
	$(VENV)/bin/ruff format --check harness tests bench
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff format harness tests bench
	$(VENV)/bin/ruff check --fix harness tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy

perf-check: $(STAMP)
	$(PY) -m harness check --baseline bench/ci/baseline --repeat $(PERF_REPEAT) $(ARGS)

perf-baseline: $(STAMP)
	$(PY) -m harness check --refresh-baseline bench/ci/baseline --repeat $(PERF_REPEAT) $(ARGS)

gpu-bench: $(STAMP)
	bash bench/gpu/run.sh

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache .benchmarks
