# One entry point for people and CI: `make test` is what .ci/run runs.
# Every target installs what it needs into .venv first (again only when pyproject.toml changed).

.DEFAULT_GOAL := help
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.headwater-installed
PYTEST_ARGS ?=
DEMO_DIR ?= demo_repo
DEMO_ARGS ?=

.PHONY: help venv install demo test check bench browser audit

help: ## List the targets
	@echo "Headwater make targets:"
	@grep -E '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "} {printf "  make %-8s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## Create .venv and install Headwater with its dev extras (only when needed)

install: venv ## Same as venv

demo: $(STAMP) ## Run the demo: generated data -> repo -> training frame -> model -> ROC AUC
	$(VENV)/bin/headwater demo --dir $(DEMO_DIR) $(DEMO_ARGS)

browser: ## Install headless Chromium and its driver from Debian (for the dashboard's browser tests)
	@command -v chromedriver >/dev/null && command -v chromium >/dev/null || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver \
				>/dev/null || { apt-get update -q >/dev/null && \
				DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver \
				>/dev/null; }; \
		else \
			echo "install chromium and chromium-driver (Debian) for the browser tests"; \
		fi; }

test: $(STAMP) browser ## Run the test suite (on 2 workers)
	$(PY) -m pytest -n 2 $(PYTEST_ARGS)

check: $(STAMP) ## Lint (ruff) and type-check (mypy --strict)
	$(PY) -m ruff check src tests examples $(wildcard benchmarks)
	$(PY) -m mypy src/headwater

audit: $(STAMP) ## Audit the installed packages for known vulnerabilities (pip-audit; needs PyPI's JSON API)
	$(VENV)/bin/pip-audit --strict --skip-editable --progress-spinner off

bench: $(STAMP) ## Run the benchmarks in benchmarks/
	$(PY) -m benchmarks
