# The two set-up commands of the README: `make train` (the main job) and `make test`.
# Both create the Python 3.12 virtualenv, install tilegraph with its dev extras and build the kernels first
# (the emulator and conformance builds with cmake, and the CPU kernels of the numpy backend, kernels/cpu).
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
	$(BIN)/python -m tilegraph.ops.cpu_kernels >> build.log 2>&1 || (cat build.log; exit 1)

# make test: lint (ruff, configured in pyproject.toml), the kernel builds and API-conformance checks (ctest), the
# tests, the CPU kernels again built for haswell (the 32-byte-vector branch; -march=native on an AVX-512 machine
# only compiles the 64-byte one), and every benchmark once as a smoke test (timings disabled).
test: setup
	$(BIN)/ruff check .
	cd build && ctest --output-on-failure -j2
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)
	TILEGRAPH_CPU_MARCH=haswell $(BIN)/python -m pytest -q tests/test_ops_cpu_kernels.py tests/test_ops_numpy_fast.py
	$(BIN)/python -m pytest -q bench --benchmark-disable

train: setup
	$(BIN)/tilegraph train specs/nano-trickster.yaml $(TRAIN_ARGS)

bench: setup
	$(BIN)/python -m pytest bench -q --benchmark-only

clean:
	rm -rf build build.log .pytest_cache

# PyTorch eager CPU reference of the training step (bench/torch_baseline.py), in its own Python 3.11 venv.
# torch 2.13.0+cpu comes from the local wheel in /opt/wheels (pip's find-links); usage: make bench-torch TORCH_ARGS="--attention manual"
TORCH_PYTHON ?= $(shell for p in /root/.pyenv/versions/3.11.7/bin/python python3.11; do \
	$$p -c 'import sys; assert sys.version_info[:2] == (3, 11)' >/dev/null 2>&1 && { command -v $$p; break; }; done)
TORCH_VENV := .venv-torch
TORCH_ARGS ?=

.PHONY: bench-torch

$(TORCH_VENV)/.installed:
	@test -n "$(TORCH_PYTHON)" || { echo "error: no working Python 3.11 found; run make TORCH_PYTHON=/path/to/python3.11"; exit 1; }
	test -x $(TORCH_VENV)/bin/python || $(TORCH_PYTHON) -m venv $(TORCH_VENV)
	$(TORCH_VENV)/bin/pip install -q torch==2.13.0 numpy
	touch $@

bench-torch: $(TORCH_VENV)/.installed
	$(TORCH_VENV)/bin/python bench/torch_baseline.py $(TORCH_ARGS)
