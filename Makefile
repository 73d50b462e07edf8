# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

# torch is pinned and installed first: the CPU wheel lies on this machine's disk,
# and a looser spec would pull a multi-gigabyte CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/deepad demo

test: setup lint
	$(PY) -m pytest -q -m "not slow"

# ruff (lint and format) and the import-linter contracts in pyproject.toml (layers, no cycles)
lint: setup
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/lint-imports

bench: setup
	$(PY) -m pip install --quiet -e ".[dev,bench]"
	$(PY) benchmarks/run_adbench.py

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
