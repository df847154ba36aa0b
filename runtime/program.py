"""Program: the result of compiling a Graph (tilegraph.compiler.compile) -- an ordered list of Steps plus the
buffers they write, for one Target.

Every step carries its implementation (`Step.impl`, chosen by the place pass) and the buffers of its outputs
(planned by plan_memory: buffers are shared by values whose lifetimes do not overlap, so a training step of
nano-trickster needs a fraction of the memory of one buffer per value and stays cache-friendlier). Backends
consume these decisions; they do not re-derive them.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from tilegraph.graph.ir import Graph, Node

from tilegraph.errors import DeviceError, ShapeError

# Backend name -> module providing `Executor(program)` with `.run(state, feeds) -> outputs`.
BACKENDS: dict[str, str] = {
    "numpy": "tilegraph.runtime.numpy_backend",
    "mesh": "tilegraph.runtime.mesh_backend",  # virtual mesh: runs a sharded Program, state/feeds are global arrays
    "emu": "tilegraph.runtime.emu_backend",  # custom-kernel steps on the kernel emulator, the rest on numpy
    "ttnn": "tilegraph.runtime.ttnn_backend",  # a Tenstorrent card: generic_op kernels, ttnn built-ins, host steps
}


@dataclass(frozen=True)
class Buffer:
    index: int
    dtype: str
    numel: int

    @property
    def nbytes(self) -> int:
        return self.numel * np.dtype(self.dtype).itemsize


@dataclass
class Step:
    """One op execution: what runs, on which values, with which implementation, writing which buffers."""

    index: int
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]
    output_dtypes: tuple[str, ...]
    attrs: Mapping[str, object]
    impl: str  # graph.passes.place: kernel:<op>, ttnn:<what>, numpy, reference or collective
    buffers: tuple[int, ...]  # buffer index of each output (-1: written in place into a state input)
    flops: int
    bytes_moved: int
    node: Node = field(repr=False, compare=False)

    def to_dict(self) -> dict:
        return {
            "index": self.index,
            "op": self.op,
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "input_shapes": [list(s) for s in self.input_shapes],
            "output_shapes": [list(s) for s in self.output_shapes],
            "output_dtypes": list(self.output_dtypes),
            "attrs": {k: _jsonable(v) for k, v in self.attrs.items()},
            "impl": self.impl,
            "buffers": list(self.buffers),
            "flops": self.flops,
            "bytes_moved": self.bytes_moved,
        }


def _jsonable(v):
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.integer, np.floating)):
        return v.item()
    return v if isinstance(v, (int, float, str, bool, type(None))) else str(v)


class Program:
    """An ordered list of Steps over a scheduled graph, with its buffer plan. Run it with `run(state, feeds)`."""

    def __init__(
        self,
        graph: Graph,
        steps: list[Step],
        buffers: list[Buffer],
        value_buffer: dict[str, int],
        aliases: dict[str, str] | None = None,
        target=None,
        plan=None,
        cost=None,
    ):
        self.graph = graph
        self.name = graph.name
        self.steps = steps
        self.buffers = buffers
        self.value_buffer = value_buffer
        # value -> the state input whose array it is written into (updates done in place, see in_place_updates)
        self.aliases = dict(aliases or {})
        self.inputs = {v.name: v for v in graph.inputs}
        self.outputs = {k: v.name for k, v in graph.outputs.items()}
        self.updates = {src.name: dst.name for src, dst in graph.updates.items()}
        self.target = target  # tilegraph.compiler.Target: backend, mesh, device options of the kernel ops
        self.plan = plan  # graph.passes.plan_memory.MemoryPlan on a mesh, else None
        self.cost = cost  # graph.passes.cost.CostReport on a mesh, else None
        self._executors: dict[str, object] = {}

    @property
    def backend(self) -> str:
        return self.target.backend

    @property
    def device(self):
        """The kernel ops' DeviceOptions (data format, core grid, knobs) the compiler chose."""
        return self.target.device

    # -- running -----------------------------------------------------------------------------------------
    def prepare(self, backend: str | None = None):
        """The backend's executor for this Program (default: the one it was compiled for), created on first use
        (buffers allocated, kernels built), so that a caller can pay for that, and see its errors, before the
        first run."""
        backend = backend or self.backend
        ex = self._executors.get(backend)
        if ex is None:
            if backend not in BACKENDS:
                raise DeviceError(f"unknown backend {backend!r}; choose one of {sorted(BACKENDS)}")
            ex = self._executors[backend] = importlib.import_module(BACKENDS[backend]).Executor(self)
        return ex

    def run(self, state: dict[str, np.ndarray], feeds: Mapping[str, np.ndarray], backend: str | None = None) -> dict:
        """Execute one step: params/state come from `state` (updated in place), data inputs from `feeds`."""
        return self.prepare(backend).run(state, feeds)

    def profile(self, state: dict[str, np.ndarray], feeds: Mapping[str, np.ndarray], repeats: int = 3) -> str:
        """Run the step `repeats` times on the numpy backend (updating `state` like `run`) and return a table of
        the median seconds per op kind, most expensive first."""
        ex = self.prepare("numpy")
        runs = []
        for _ in range(repeats):
            times: list[float] = []
            ex.run(state, feeds, times=times)
            runs.append(times)
        per_step = np.median(np.array(runs), axis=0)
        by_op: dict[str, list[float]] = {}
        for s, t in zip(self.steps, per_step):
            agg = by_op.setdefault(s.op, [0.0, 0, 0])
            agg[0] += float(t)
            agg[1] += 1
            agg[2] += s.flops
        total = float(per_step.sum())
        lines = [f"program {self.name}: {total * 1e3:.1f} ms per run (median of {repeats})"]
        lines.append(f"{'op':<18}{'steps':>6}{'ms':>10}{'share':>8}{'GFLOP/s':>10}")
        for op, (t, n, fl) in sorted(by_op.items(), key=lambda kv: -kv[1][0]):
            rate = f"{fl / t / 1e9:.1f}" if t > 0 and fl else "-"
            lines.append(f"{op:<18}{n:>6}{t * 1e3:>10.1f}{100 * t / total:>7.1f}%{rate:>10}")
        return "\n".join(lines)

    def init_state(self, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Params (copied, in the graph's dtype) plus zeroed optimizer state for every `state` input.

        Arrays have the value's global shape: for a sharded Program the mesh backend scatters them per device."""
        state: dict[str, np.ndarray] = {}
        for v in self.graph.inputs:
            shape = v.sharding.global_shape if v.sharding is not None else v.shape
            if v.role == "param":
                if v.name not in params:
                    raise ShapeError(f"program {self.name!r} needs param {v.name!r}, which `params` lacks")
                arr = np.array(params[v.name], dtype=v.dtype, copy=True)
                if arr.shape != shape:
                    raise ShapeError(f"param {v.name!r} has shape {arr.shape}; program {self.name!r} expects {shape}")
                state[v.name] = arr
            elif v.role == "state":
                state[v.name] = np.zeros(shape, dtype=v.dtype)
        return state

    # -- inspection ----------------------------------------------------------------------------------------
    @property
    def flops(self) -> int:
        return sum(s.flops for s in self.steps)

    @property
    def buffer_bytes(self) -> int:
        return sum(b.nbytes for b in self.buffers)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "inputs": [{"name": v.name, "shape": list(v.shape), "dtype": v.dtype, "role": v.role} for v in self.graph.inputs],
            "outputs": dict(self.outputs),
            "updates": dict(self.updates),
            "buffers": [{"index": b.index, "dtype": b.dtype, "numel": b.numel} for b in self.buffers],
            "in_place": dict(self.aliases),
            "steps": [s.to_dict() for s in self.steps],
        }

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def __len__(self) -> int:
        return len(self.steps)

    def __str__(self) -> str:
        rows = [("#", "op", "outputs", "shape", "inputs", "impl", "buf", "MFLOP")]
        for s in self.steps:
            rows.append((
                str(s.index), s.op, ", ".join(s.outputs),
                " ".join("x".join(map(str, sh)) or "()" for sh in s.output_shapes),
                ", ".join(s.inputs), s.impl, ",".join("st" if b < 0 else str(b) for b in s.buffers), f"{s.flops / 1e6:.2f}",
            ))  # fmt: skip
        widths = [min(max(len(r[c]) for r in rows), 48) for c in range(len(rows[0]))]
        header = (
            f"program {self.name}: {len(self.steps)} steps, {len(self.buffers)} buffers "
            f"({self.buffer_bytes / 2**20:.1f} MiB), {self.flops / 1e9:.3f} GFLOP"
        )
        lines = [header]
        for r in rows:
            lines.append("  ".join(_clip(cell, w).ljust(w) for cell, w in zip(r, widths)).rstrip())
        return "\n".join(lines)


def _clip(s: str, w: int) -> str:
    return s if len(s) <= w else s[: w - 3] + "..."
