# The two commands of the README:
#   make run   create .venv, install tickgate, run it on http://127.0.0.1:8000
#   make test  create .venv, install tickgate + dev tools and the test servers, run every check:
#              ruff format --check, ruff check, mypy, then pytest with coverage (its floor
#              is fail_under in pyproject.toml)
# make check is the same as make test; make lint runs the format, lint and type checks alone.
PYTHON ?= python3
# Coverage of the whole suite, with the report; a run of a subset
# (PYTEST_ARGS="-m 'not slow'") should pass COV_ARGS= as well, as the floor
# holds for the whole suite only.
COV_ARGS ?= --cov --cov-report=term-missing:skip-covered
VENV ?= .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed

.PHONY: run test check servers lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[load]'
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,load]'
	touch $@ $(RUN_STAMP)

run: $(RUN_STAMP)
	$(BIN)/tickgate run $(ARGS)

servers:
	@.ci/install-servers

lint: $(DEV_STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

test: $(DEV_STAMP) servers lint
	$(BIN)/pytest $(COV_ARGS) $(PYTEST_ARGS)

check: test

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis .coverage
