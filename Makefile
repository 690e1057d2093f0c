# Two commands matter: `make run` sets everything up and evaluates the banking77 scorecard;
# `make test` runs the tests. The rest are conveniences.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
PORT ?= 3000
# The CPU build of torch, so setup never pulls a CUDA one; GPU machines: TORCH=torch==2.13.0
TORCH ?= torch==2.13.0+cpu
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: setup run ui test test-unit check format clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -e ".[dev,embedding,k8s]"
	touch $@

run: setup
	$(BIN)/plexus scorecards validate
	$(BIN)/plexus evaluate --scorecard banking77 --wait

# Started from the instance folder: dagster warns about the template dagster.yaml when it runs
# beside it with another DAGSTER_HOME.
ui: setup
	$(BIN)/plexus scorecards register
	cd "$(DAGSTER_HOME)" && "$(CURDIR)/$(BIN)/dagster" dev -h 127.0.0.1 -p $(PORT) \
		-w "$(CURDIR)/workspace.yaml"

test: setup
	$(BIN)/pytest

test-unit: setup
	$(BIN)/pytest -m "not integration"

check: setup
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf .dagster_home .plexus
