# Thin wrappers; every target sets up first (idempotent, fast when already installed).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: setup setup-tests demo test test-all bench
setup:
	bash scripts/setup.sh $(VENV)

# the tests also need Debian's chromium (headless-browser checks of the HTML report)
setup-tests:
	ZOORANK_SETUP_TESTS=1 bash scripts/setup.sh $(VENV)

demo: setup
	$(VENV)/bin/zoorank rank --zoo results/ground_truth/zoo_80px.yaml --dataset emoji --per-class 10

test: setup-tests
	$(PY) -m pytest -q

test-all: setup-tests
	$(PY) -m pytest -q -m ""

bench: setup
	$(PY) benchmarks/run_all.py
