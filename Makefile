# Hotline: the two commands are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= $(or $(HOTLINE_PORT),8000)
# Test processes (pytest-xdist): one per core by default; whole files go to one worker, so a
# module's expensive fixture (the wheel build, a served process) is set up once.
PYTEST_WORKERS ?= auto

.PHONY: run test lint bench venv dev clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files make re-runs fast and re-install when pyproject.toml changes.
$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@ $(VENV)/.installed

venv: $(VENV)/.installed
dev: $(VENV)/.installed-dev

run: $(VENV)/.installed
	@mkdir -p var
	$(BIN)/hotline db upgrade
	$(BIN)/hotline demo --if-empty
	$(BIN)/hotline serve --port $(PORT)

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check hotline bot kb tests benchmarks migrations
	$(BIN)/mypy hotline kb bot

bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) var/*.db var/*.db-wal var/*.db-shm
