# Two entry points, each installing what it needs into .venv:
#   make quickstart   the main job: the quickstart sweep, ending with its Pareto front
#   make test         lint + the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=

.PHONY: quickstart test lint install install-dev clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@ $(RUN_STAMP)

install: $(RUN_STAMP)
install-dev: $(DEV_STAMP)

quickstart: $(RUN_STAMP)
	$(VENV)/bin/mvit-lab sweep experiments/quickstart.yaml $(if $(wildcard runs/sweeps/quickstart/sweep.json),--resume,)

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check mvit_lab tests

test: lint
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache
