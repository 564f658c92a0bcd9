# The two commands of the README:
#   make run   create .venv, install tickgate, run it on http://127.0.0.1:8000
#   make test  create .venv, install tickgate + dev tools and the test servers, run every check:
#              ruff format --check, ruff check, mypy, then pytest with coverage (its floor
#              is fail_under in pyproject.toml)
# make check is the same as make test; make lint runs the format, lint and type checks alone;
# make pytest runs the tests alone (CI's second interpreter).
#
# PYTHON picks the interpreter (3.11 to 3.13). A venv made by another
# interpreter is recreated, so `PYTHON=python3.12 make test` after a 3.11 run
# just works; VENV=.venv-3.13 keeps a second venv beside the first.
PYTHON ?= python3
# Coverage of the whole suite, with the report; a run of a subset
# (PYTEST_ARGS="-m 'not slow'") should pass COV_ARGS= as well, as the floor
# holds for the whole suite only.
COV_ARGS ?= --cov --cov-report=term-missing:skip-covered
VENV ?= .venv
BIN := $(VENV)/bin
VERSION_OF := -c 'import sys; print("%d.%d" % sys.version_info[:2])'
PYTHON_VERSION := $(shell $(PYTHON) $(VERSION_OF) 2>/dev/null)
VENV_VERSION := $(shell $(BIN)/python $(VERSION_OF) 2>/dev/null)
# The venv's interpreter, recorded when it is made: a venv of another version
# has another stamp, so it is made again.
VENV_STAMP := $(VENV)/.python-$(PYTHON_VERSION)
RUN_STAMP := $(VENV)/.run-installed
DEV_STAMP := $(VENV)/.dev-installed
SUPPORTED := 3.11 3.12 3.13

.PHONY: run test check servers lint pytest clean

$(VENV_STAMP):
	@case " $(SUPPORTED) " in *" $(PYTHON_VERSION) "*) ;; \
	  *) echo "make: PYTHON=$(PYTHON) is Python '$(PYTHON_VERSION)'; tickgate needs one of $(SUPPORTED) (e.g. make test PYTHON=python3.11)" >&2; exit 2;; esac
	@if [ -n "$(VENV_VERSION)" ] && [ "$(VENV_VERSION)" != "$(PYTHON_VERSION)" ]; then \
	  echo "make: $(VENV) was made with Python $(VENV_VERSION), not $(PYTHON_VERSION); recreating it"; fi
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	touch $@

$(RUN_STAMP): pyproject.toml $(VENV_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[load]'
	touch $@

$(DEV_STAMP): pyproject.toml $(VENV_STAMP)
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

pytest: $(DEV_STAMP) servers
	$(BIN)/pytest $(COV_ARGS) $(PYTEST_ARGS)

check: test

clean:
	rm -rf $(VENV) .venv-3.* .mypy_cache .ruff_cache .pytest_cache .hypothesis .coverage
