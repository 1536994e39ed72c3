# Two commands for a fresh machine:
#   make demo   install and run Canh Gác on the embedded SQLite store with demo data
#   make test   install what the tests need (incl. the Elasticsearch zip) and run the full suite
#   make check  the fast tests only: no Elasticsearch, browser, root or slow tests (under 2 minutes)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000

.PHONY: demo test check install install-dev system-deps lint typecheck elasticsearch clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3

# pip shows its progress (a first install downloads ~100 MB); the upgrade of pip itself stays quiet
install: $(BIN)/python
	$(BIN)/pip install --progress-bar on -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --progress-bar on -e ".[dev]"

demo: install
	@echo "soc is installed in $(abspath $(BIN)); to run it from anywhere:"
	@echo "    export PATH=\"$(abspath $(BIN)):\$$PATH\"    (or: source $(VENV)/bin/activate)"
	$(BIN)/soc up --demo --port $(PORT)

system-deps:
	scripts/install-system-deps

elasticsearch: install
	$(BIN)/soc dev elasticsearch fetch

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install-dev
	$(BIN)/mypy

test: system-deps install-dev elasticsearch lint typecheck
	$(BIN)/pytest -p no:cacheprovider

# markers: tests/conftest.py marks by fixture use (elasticsearch, browser, netns); slow by hand.
# Two pytest workers (pytest-xdist), one per core of the smallest supported machine.
CHECK_WORKERS ?= 2
check: install-dev
	$(BIN)/pytest -p no:cacheprovider -q -n $(CHECK_WORKERS) -m "not slow and not elasticsearch and not browser and not netns"

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
