# The two commands of the README: `make demo` and `make test`. Each sets itself up: a virtualenv
# in .venv with affectlab installed (editable) and its dependencies pinned by constraints.txt
# (a frozen, tested set: the resolver has nothing to search), re-done when either file changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.affectlab-installed
DEMO_OUT ?= demo-out

.PHONY: setup demo test test-fast clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "affectlab needs Python >= 3.11, found " + sys.version.split()[0])'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: setup
	$(BIN)/affectlab demo --out $(DEMO_OUT)

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m 'not slow'

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
