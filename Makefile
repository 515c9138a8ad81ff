# Two entry points, each installing what it needs into .venv:
#   make quickstart   the main job: the quickstart sweep, ending with its Pareto front
#   make test         lint + the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
PYTEST_ARGS ?=

.PHONY: quickstart test lint install install-dev browser screenshot clean

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

# The dashboard's browser tests drive Debian's chromium (+ chromium-driver) through selenium.
# As root on Debian they are installed here; elsewhere the tests say what to install.
browser:
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if grep -qi debian /etc/os-release 2>/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing chromium and chromium-driver (apt-get) for the browser tests"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	      chromium chromium-driver >/dev/null; \
	  else \
	    echo "note: the dashboard's browser tests need chromium and chromium-driver"; \
	  fi; \
	fi

test: lint browser
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

# docs/dashboard.png: the dashboard over the quickstart's store (run make quickstart first)
screenshot: $(DEV_STAMP) browser
	$(PY) docs/make_screenshot.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .ruff_cache
