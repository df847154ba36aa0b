"""The ops that have custom tt-metal kernels: one registered `KernelOp` per op, in kernels/<op>/program.py.

A KernelOp holds everything device-side of its op, so adding a kernel op is one folder (kernels/<op>/: the
reader / compute / writer sources and program.py, found here by its program.py) plus the op itself in ops/<op>.py:
- `program(inputs, attrs, opts)`: the ProgramDescription for one call and the inputs laid out as device tensors;
- `unpack(outputs, inputs, attrs)`: the device outputs turned back into the op's outputs;
- `input_formats(dtype, count, knobs)`: the device data format of each input;
- `on_host(inputs, attrs, run)` / `reference(inputs, attrs)`: what the kernels compute, from the op on the host;
- `case_strategy(common, small)` / `make_inputs(case, rng, randn, grid)`: fuzz cases (runtime/fuzz.py);
- `error_bounds(x64, attrs, refs, backend, opts)`: the per-element tolerance (derived in runtime/fuzz.py's docstring)
  for a call run with DeviceOptions `opts` (None: the builder's defaults);
runtime/kernel_ops.py and runtime/fuzz.py loop over `KERNEL_OPS`; they name no op.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from tilegraph.errors import DeviceError


@dataclass(frozen=True)
class DeviceOptions:
    """How a kernel op is placed on the device: data format of its inputs, core grid, builder knobs."""

    dtype: str = "bfloat16"  # device format of the op's inputs ("bfloat16" or "bfloat8_b")
    grid: tuple[int, int] = (8, 8)
    knobs: Mapping[str, object] = field(default_factory=dict)  # e.g. max_block, q_chunk, k_chunk, residual


class KernelOp:
    """Device side of one op with custom kernels. Subclasses set `name` and implement every method."""

    name: ClassVar[str] = ""

    def program(self, inputs: Sequence[np.ndarray], attrs: Mapping[str, object], opts: DeviceOptions):
        """(program description, device input arrays) for one call."""
        raise NotImplementedError(self.name)

    def unpack(self, outputs: Mapping[str, np.ndarray], inputs: Sequence[np.ndarray], attrs) -> list[np.ndarray]:
        raise NotImplementedError(self.name)

    def device_finish(self, ttnn, tensors: Mapping[str, object]) -> dict[str, object]:
        """On a card, after the kernels: ttnn calls on the program's device tensors (name -> padded TILE tensor,
        inputs and outputs) whose results `unpack` takes instead of finishing on the host (swiglu_bwd's matmuls);
        name -> device tensor, read back padded. Default: nothing; unpack finishes from the read-back outputs."""
        return {}

    def refuses(self, attrs: Mapping[str, object], input_shapes: Sequence[tuple[int, ...]] | None = None) -> str | None:
        """Why the kernels cannot run a call with these attrs and input shapes (the place pass then puts the step
        elsewhere and says so), or None when they can. Without shapes, only the attrs are judged."""
        return None

    def input_formats(self, dtype: str, count: int, knobs: Mapping[str, object]) -> list[str]:
        """Device data format of each input when the op runs in `dtype` with builder `knobs`."""
        return [dtype] * count

    def on_host(self, inputs: list[np.ndarray], attrs, run) -> list[np.ndarray]:
        """What the kernels compute, from `run(inputs) -> outputs`, the op as a host function (its reference or
        its fast path); a kernel that fuses more than its op (rmsnorm's residual add) overrides this."""
        return run(inputs)

    def reference(self, x64: list[np.ndarray], attrs) -> list[np.ndarray]:
        """float64 ground truth of what the kernels compute."""
        from tilegraph.ops import get_op

        return self.on_host(x64, attrs, lambda xs: get_op(self.name).reference(xs, attrs))

    def case_strategy(self, common: dict, small: bool):
        raise NotImplementedError(self.name)

    def make_inputs(self, case: dict, rng, randn, grid) -> tuple[list[np.ndarray], dict, DeviceOptions]:
        raise NotImplementedError(self.name)

    def error_bounds(self, x64: list[np.ndarray], attrs, refs: list[np.ndarray], backend: str,
                     opts: DeviceOptions | None = None) -> list[np.ndarray]:
        raise NotImplementedError(self.name)


KERNEL_OPS: dict[str, KernelOp] = {}


def register_kernel_op(cls: type[KernelOp]) -> type[KernelOp]:
    """Class decorator: adds the single instance of a kernel op to KERNEL_OPS."""
    if not cls.name or cls.name in KERNEL_OPS:
        raise TypeError(f"{cls.__name__}: kernel op name {cls.name!r} missing or registered twice")
    KERNEL_OPS[cls.name] = cls()
    return cls


def get_kernel_op(name: str) -> KernelOp:
    try:
        return KERNEL_OPS[name]
    except KeyError:
        raise DeviceError(f"op {name!r} has no custom kernel; kernel ops are {', '.join(KERNEL_OPS)}") from None


# Every kernels/<folder>/program*.py (program.py, program_bwd.py) registers its KernelOps on import.
for _program in sorted(Path(__file__).parent.glob("*/program*.py")):
    importlib.import_module(f"tilegraph.kernels.{_program.parent.name}.{_program.stem}")
