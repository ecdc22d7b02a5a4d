# Developer entry points. `make test` is the README's test command and what .ci/run calls.
PYTHON ?= python3

.PHONY: install test lint bench quality examples

install:
	$(PYTHON) -m pip install -q -e '.[test,dask]' ./tests/plugin_pkg

test: install
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

bench:
	$(PYTHON) benchmarks/bench.py

quality:
	$(PYTHON) benchmarks/quality.py

examples:
	$(PYTHON) examples/make_examples.py
