# Two commands do all set-up on a fresh clone: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all bench lint browser clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	# torchattacks: the robust tests' oracle; --no-deps because it lists torchvision (unused by its attacks)
	$(BIN)/python -m pip install -q --no-deps torchattacks==3.5.1
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

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
