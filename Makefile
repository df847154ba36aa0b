# The two set-up commands of the README: `make train` (the main job) and `make test`.
# Both create the Python 3.12 virtualenv, install tilegraph with its dev extras and build the kernels first.
PYTHON ?= $(shell command -v python3.12 2>/dev/null || echo /root/.pyenv/versions/3.12.1/bin/python)
VENV := .venv
BIN := $(VENV)/bin
TRAIN_ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup venv kernels test train bench clean

setup: venv kernels

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

kernels: venv
	cmake -S . -B build -DPython3_EXECUTABLE=$(abspath $(BIN)/python) > build.log 2>&1 || (cat build.log; exit 1)
	cmake --build build -j2 >> build.log 2>&1 || (cat build.log; exit 1)

test: setup
	cd build && ctest --output-on-failure
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

train: setup
	$(BIN)/tilegraph train specs/nano-trickster.yaml $(TRAIN_ARGS)

bench: setup
	$(BIN)/python -m pytest bench -q --benchmark-only

clean:
	rm -rf build build.log .pytest_cache
