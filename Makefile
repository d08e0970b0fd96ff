# Two commands on a fresh machine (see README.md):
#   make demo   - create/reuse .venv, install, run the main job on the built-in default
#   make test   - create/reuse .venv, install with the test extra, lint and run the whole suite
# Both install the [onednn] extra (oneDNN's CPU convolutions) and build its kernels once.
# Variables: PYTHON (interpreter that creates the venv), VENV, PYTEST_ARGS.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.smg-jax-installed
PYTEST_ARGS ?= -n 2 --durations=15

.PHONY: demo test lint format venv clean

# Reinstalls whenever pyproject.toml changes; otherwise the venv is reused.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,onednn]'
	$(VENV)/bin/smg-build-kernels || echo "oneDNN kernels not built: XLA's convolution is used."
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m experiments.demo $(DEMO_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
