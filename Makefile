# The two commands of the quick start:
#   make up     install (once) and run tingxie on its embedded default (SQLite, no Redis)
#   make test   install (once) what the tests need and run them
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: up test test-containers install install-test

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.offline: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[offline]'
	touch $@

# torch is pinned: an unpinned torch pulls the CUDA build (gigabytes) into a test venv.
$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q 'torch==2.13.0'
	$(BIN)/pip install -q -e '.[offline,funasr,diarize,dev]' 'torch==2.13.0'
	touch $(VENV)/.offline $@

install: $(VENV)/.offline

install-test: $(VENV)/.test

up: install
	$(BIN)/tingxie up

test: install-test
	$(BIN)/pytest $(PYTEST_ARGS)

# The deployment for real: builds the images with podman (the Dockerfile's base stood in for by
# Debian's python3.11), starts docker-compose.yml through podman's Docker API and uses it. Minutes.
test-containers: install-test
	$(BIN)/pytest -m containers tests/containers $(PYTEST_ARGS)
