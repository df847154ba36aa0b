# The two set-up commands of the README: `make train` (the main job) and `make test`.
# Both create the Python 3.12 virtualenv, install tilegraph with its dev extras and build the kernels first.
# The first Python 3.12 that actually runs (a pyenv shim may exist without a 3.12 selected).
PYTHON ?= $(shell for p in python3.12 /root/.pyenv/versions/3.12*/bin/python3.12; do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && { command -v $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
TRAIN_ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup venv kernels test train bench clean

setup: venv kernels

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: no working Python 3.12 found; run make PYTHON=/path/to/python3.12"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

kernels: venv
	cmake -S . -B build -DPython3_EXECUTABLE=$(abspath $(BIN)/python) > build.log 2>&1 || (cat build.log; exit 1)
	cmake --build build -j2 >> build.log 2>&1 || (cat build.log; exit 1)

test: setup
	cd build && ctest --output-on-failure -j2
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

train: setup
	$(BIN)/tilegraph train specs/nano-trickster.yaml $(TRAIN_ARGS)

bench: setup
	$(BIN)/python -m pytest bench -q --benchmark-only

clean:
	rm -rf build build.log .pytest_cache
