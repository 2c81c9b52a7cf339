# Thin wrappers; every target sets up first (idempotent, fast when already installed).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-all bench
setup:
	bash scripts/setup.sh $(VENV)

demo: setup
	$(VENV)/bin/zoorank rank --zoo default --dataset emoji --per-class 10

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m ""

bench: setup
	$(PY) benchmarks/run_all.py
