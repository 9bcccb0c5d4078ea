# The two commands of the quick start:
#   make up     install (once) and run tingxie on its embedded default (SQLite, no Redis)
#   make test   install (once) what the tests need and run them all, on every core
# The test tiers (README "Development"; tests/conftest.py sorts the tests):
#   make test-unit   no server, no process, no model: under a minute
#   make test-fast   unit + component (the app in process, ffmpeg, tiny models): before each commit
PYTHON ?= python3
# Python keeps compiled modules (__pycache__, ignored by git) even where the environment says not to
# (PYTHONDONTWRITEBYTECODE=1 on the CI machines): otherwise every pytest worker rewrites every test
# module's asserts again and every process a test starts compiles the project again (collection:
# 32 s of CPU without the cache, 18 s with it, per pytest process on 2 CPUs).
unexport PYTHONDONTWRITEBYTECODE
VENV ?= .venv
BIN := $(VENV)/bin

# pytest-xdist: two workers per CPU this process may run on (nproc), at most PYTEST_MAX_WORKERS
# (each loads models): the system tests spend half their time waiting on the processes they
# started, so two per CPU keep the CPUs busy (on 2 CPUs: 16 min against 18 with one per CPU).
# Not "auto": with psutil installed that counts physical cores, one on a 2-vCPU VM whose vCPUs
# are a core's two threads.
PYTEST_WORKERS ?= $(shell echo $$(( 2 * $$(nproc 2>/dev/null || echo 1) )))
PYTEST_MAX_WORKERS ?= 4
XDIST := -n $(PYTEST_WORKERS) --maxprocesses $(PYTEST_MAX_WORKERS) --dist loadscope

.PHONY: up test test-fast test-unit test-containers install install-test

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
	$(BIN)/pytest $(XDIST) $(PYTEST_ARGS)

test-fast: install-test
	$(BIN)/pytest $(XDIST) -m "unit or component" $(PYTEST_ARGS)

test-unit: install-test
	$(BIN)/pytest -m unit $(PYTEST_ARGS)

# The deployment for real: builds the images with podman (the Dockerfile's base stood in for by
# Debian's python3.11), starts docker-compose.yml through podman's Docker API and uses it. Minutes.
test-containers: install-test
	$(BIN)/pytest -m containers tests/system/containers $(PYTEST_ARGS)
