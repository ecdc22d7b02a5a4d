# Developer entry points. `make test` is the README's test command and what .ci/run calls.
PYTHON ?= python3

.PHONY: install test lint typecheck bench quality examples mutation fuzz fuzz-atheris docs

install:
	$(PYTHON) -m pip install -q -e '.[test,dask]' ./tests/plugin_pkg

test: install
	$(PYTHON) -m pytest -q

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .

# mypy --strict on an installed copy of vwmerge and the example plugin (see [tool.mypy] in
# pyproject.toml): the source tree's core -> vwmerge mapping would hide vwmerge's types.
typecheck:
	rm -rf build/typecheck build/lib tests/plugin_pkg/build/lib
	$(PYTHON) -m pip install -q --no-deps --no-compile --target build/typecheck . ./tests/plugin_pkg
	cd build/typecheck && $(PYTHON) -m mypy --config-file ../../pyproject.toml -p vwmerge -p vwmerge_example_plugin

bench:
	$(PYTHON) benchmarks/bench.py

quality:
	$(PYTHON) benchmarks/quality.py

examples:
	$(PYTHON) examples/make_examples.py

# Plant each bug of tests/mutation/mutants.py in a copy of the tree and run the tests that should
# catch it (docs/testing.md). MUTANTS="id ..." runs some of them.
mutation:
	$(PYTHON) tests/mutation/run.py $(MUTANTS)

# The long fuzz campaign (docs/fuzzing.md): FUZZ_SECONDS of mutated real VW models through the
# library and the CLI; findings in $(FUZZ_DIR)/findings, the summary in $(FUZZ_DIR)/summary.json.
FUZZ_SECONDS ?= 1800
FUZZ_DIR ?= fuzz-work
fuzz:
	nice -n 19 $(PYTHON) tests/fuzz/run.py --seconds $(FUZZ_SECONDS) --workdir $(FUZZ_DIR)

# Coverage-guided companion (atheris/libFuzzer); stops at the first finding (crash-* file).
fuzz-atheris:
	mkdir -p $(FUZZ_DIR)/atheris-corpus
	nice -n 19 $(PYTHON) tests/fuzz/atheris_target.py $(FUZZ_DIR)/atheris-corpus -max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -max_len=65536

# The documentation site in site/ (mkdocs.yml; `python -m mkdocs serve` to preview). mkdocstrings
# reads the API reference from the installed vwmerge (griffe follows the editable install back to
# core/), so this installs it with the docs extra first. --strict: every link, anchor and
# cross-reference must resolve.
docs:
	$(PYTHON) -m pip install -q -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict
