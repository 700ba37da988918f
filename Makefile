# Set-up and the two README commands. `make demo` and `make test` each create .venv on first use
# (Python 3.11, the project installed editable with its dev extra) and are quick once it exists.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test lint pytest clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "jointkit needs Python >= 3.11"'
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -e ".[dev]" --config-settings editable_mode=compat
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/jointkit demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# pytest exits 5 when it collects no test: that fails here as any other non-zero exit does. Two workers (the
# machines' two cores), each test file in one worker so that a module's shared runs are made once; the tests do
# not depend on the wall clock, so a busy neighbour changes their duration, not their verdict
pytest: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(VENV)/bin/python -m pytest -q -n 2 --dist loadfile

test: lint pytest

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
