# Two commands do all set-up on a fresh clone: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all bench lint browser docs docs-pictures clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	# torchattacks: the robust tests' oracle; --no-deps because it lists torchvision (unused by its attacks)
	$(BIN)/python -m pip install -q --no-deps torchattacks==3.5.1
	# inseq: the LLM benchmark's peer; --no-deps plus the four it imports (its full list pulls aiohttp, protobuf, ...)
	$(BIN)/python -m pip install -q --no-deps inseq==0.7.1 jaxtyping==0.3.11 wadler_lindig==0.1.8 typeguard==2.13.3 treescope==0.1.10
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m intellego.demo $(ARGS)

# The browser tests need Debian's chromium: scripts/ensure_chromium.sh installs it when this user may (root or
# passwordless sudo); otherwise it says how and prints the pytest arguments that leave those tests out.
test: $(STAMP)
	$(BIN)/python -m pytest -q $$(sh scripts/ensure_chromium.sh) $(ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "" $$(sh scripts/ensure_chromium.sh) $(ARGS)

browser:
	sh scripts/ensure_chromium.sh >/dev/null

# The documentation site, offline, into build/site (open build/site/index.html); strict: a warning fails it.
# Not part of `make test`: tests/test_docs_site.py builds the site, tests/test_docs_tutorials.py runs the
# tutorials and checks that the committed pictures in docs/img are the ones they draw; `make docs-pictures`
# redraws them (about a minute of CPU).
TUTORIALS := attribution_worked_example insights_three_hosts text_attribution metrics_evaluation scale_dataset
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 PYTHONWARNINGS=ignore::DeprecationWarning $(BIN)/python -m mkdocs build --strict $(ARGS)
	@echo "docs: open build/site/index.html"

docs-pictures: $(STAMP)
	for t in $(TUTORIALS); do $(BIN)/python docs/tutorials/$$t.py >/dev/null || exit 1; done

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
