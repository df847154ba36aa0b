"""The numpy backend: executes a Program's Steps on host arrays.

Everything that can be decided once is decided in the constructor: buffers are allocated, every step is turned
into a (function, input arrays, output arrays, attrs) call whose argument lists are reused across runs, so the
per-step loop is one Python call per op. Inputs are bound by reference (no copy of params or optimizer state);
only when the caller hands in a different array object are the argument lists patched.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np
from tilegraph.ops import cpu_kernels, get_op

from tilegraph.errors import DeviceError, ShapeError


def _reference_into(op):
    """Adapter for ops without a fast path: run the reference and copy its results into the step's buffers."""

    def run(inputs, outputs, attrs):
        for out, res in zip(outputs, op.reference(inputs, attrs)):
            np.copyto(out, res, casting="same_kind")

    return run


class Executor:
    def __init__(self, program):
        self.program = program
        cpu_kernels.load()  # the fast paths' CPU kernels: built (once per machine) before anything runs
        self.buffers = [np.empty(b.numel, dtype=b.dtype) for b in program.buffers]
        # value name -> array: views of buffers for computed values; graph inputs are bound at run time.
        self.arrays: dict[str, np.ndarray] = {}
        for step in program.steps:
            for name, shape, b in zip(step.outputs, step.output_shapes, step.buffers):
                if name not in program.aliases:  # a buffer may be larger than this value (best-fit reuse)
                    self.arrays[name] = self.buffers[b][: math.prod(shape)].reshape(shape)
        self.input_types = {v.name: v for v in program.graph.inputs}
        self.bound: dict[str, np.ndarray | None] = {name: None for name in self.input_types}
        # Where each graph input appears in the argument lists, so rebinding patches them directly.
        self.uses: dict[str, list[tuple[list, int]]] = {name: [] for name in self.input_types}
        self.calls: list[tuple] = []
        for step in program.steps:
            fn = self.step_function(step)
            ins = [self.arrays.get(name) for name in step.inputs]
            for j, name in enumerate(step.inputs):
                if name in self.uses:
                    self.uses[name].append((ins, j))
                elif name in program.aliases:
                    self.uses[program.aliases[name]].append((ins, j))
            outs = [self.arrays.get(name) for name in step.outputs]
            for j, name in enumerate(step.outputs):
                if name in program.aliases:  # written in place into the state array it replaces
                    self.uses[program.aliases[name]].append((outs, j))
            self.calls.append((fn, ins, outs, step.attrs))
        self.updates = [
            (src, self.arrays.get(dst), dst) for src, dst in program.updates.items() if dst not in program.aliases
        ]

    def step_function(self, step):
        """The call that runs `step` as the place pass decided: the fast path or the reference."""
        op = get_op(step.op)
        if step.impl == "numpy":
            return op.numpy_into
        if step.impl == "reference":
            return _reference_into(op)
        raise DeviceError(
            f"program {self.program.name!r} step {step.index} ({step.op}) is placed as {step.impl!r}, which the "
            f"{type(self).__module__.rsplit('.', 1)[-1]} cannot run; compile it for its backend "
            f"(tilegraph.compiler.Target(backend=...))"
        )

    def _bind(self, name: str, arr) -> np.ndarray:
        v = self.input_types[name]
        if arr is self.bound[name]:
            return arr
        if v.role == "input":
            # Data feeds (token ids, lr, step) may come as Python scalars or int64 arrays: convert once here.
            # (np.ascontiguousarray would turn a 0-d scalar into shape (1,).)
            arr = np.asarray(arr, dtype=v.dtype)
            if not arr.flags.c_contiguous:
                arr = arr.copy()
        elif not isinstance(arr, np.ndarray) or arr.dtype != np.dtype(v.dtype) or not arr.flags.c_contiguous:
            raise ShapeError(
                f"state {name!r} must be a C-contiguous {v.dtype} numpy array (it is updated in place); "
                f"got {type(arr).__name__} {getattr(arr, 'dtype', '')}; use program.init_state(params)"
            )
        if arr.shape != v.shape:
            raise ShapeError(f"input {name!r} has shape {arr.shape}; program {self.program.name!r} expects {v.shape}")
        self.bound[name] = arr
        for args, j in self.uses[name]:
            args[j] = arr
        return arr

    def run(self, state: dict[str, np.ndarray], feeds: Mapping[str, np.ndarray], times: list | None = None):
        """One execution; when `times` is a list, the seconds each step took are appended to it (profiling)."""
        for name, v in self.input_types.items():
            source = feeds if v.role == "input" else state
            if name not in source:
                where = "feeds" if v.role == "input" else "state"
                raise ShapeError(f"program {self.program.name!r} needs {v.role} {name!r} in `{where}`")
            self._bind(name, source[name])
        if times is None:
            for fn, ins, outs, attrs in self.calls:
                fn(ins, outs, attrs)
        else:
            for fn, ins, outs, attrs in self.calls:
                t0 = time.perf_counter()
                fn(ins, outs, attrs)
                times.append(time.perf_counter() - t0)
        for src, arr, dst in self.updates:
            np.copyto(state[src], arr if arr is not None else self.bound[dst])
        return {key: np.array(self.arrays[name] if name in self.arrays else self.bound[name])
                for key, name in self.program.outputs.items()}  # fmt: skip
