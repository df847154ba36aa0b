"""The `emu` backend: a Program whose custom-kernel steps run through the kernel emulator.

Steps whose op has custom kernels (rmsnorm, swiglu, attention: runtime.kernel_ops.KERNEL_OPS) are executed by
building their ProgramDescription and running the C++ kernels in kernels/emu on the host, in the device data
format (bfloat16 by default; results are cast back to the step's float32 buffers). Every other step falls back to
the numpy backend's implementation (its fast path or its reference); `fallback_steps()` lists them, so nothing
falls back silently.

Emulator options come from the environment: TILEGRAPH_EMU_GRID ("4x2": the core grid, default 2x2, small because
every emulated core is three host threads) and TILEGRAPH_EMU_DTYPE (bfloat16 or bfloat8_b).
"""

from __future__ import annotations

import os

import numpy as np
from tilegraph.runtime import numpy_backend
from tilegraph.kernels.registry import KERNEL_OPS, DeviceOptions
from tilegraph.runtime.kernel_ops import run_kernel_op

from tilegraph.errors import DeviceError


def options_from_env() -> DeviceOptions:
    grid = os.environ.get("TILEGRAPH_EMU_GRID", "2x2")
    try:
        gx, gy = (int(v) for v in grid.lower().split("x"))
    except ValueError:
        raise DeviceError(f"TILEGRAPH_EMU_GRID={grid!r} must look like 4x2 (cores in x and y)") from None
    dtype = os.environ.get("TILEGRAPH_EMU_DTYPE", "bfloat16")
    if dtype not in ("bfloat16", "bfloat8_b"):
        raise DeviceError(f"TILEGRAPH_EMU_DTYPE={dtype!r} must be bfloat16 or bfloat8_b")
    return DeviceOptions(dtype=dtype, grid=(gx, gy))


def _kernel_call(op_name: str, opts: DeviceOptions):
    def run(inputs, outputs, attrs):
        for out, res in zip(outputs, run_kernel_op(op_name, inputs, attrs, "emu", opts)):
            np.copyto(out, res.reshape(out.shape), casting="same_kind")

    return run


class Executor(numpy_backend.Executor):
    def __init__(self, program, opts: DeviceOptions | None = None):
        super().__init__(program)
        self.opts = opts or options_from_env()
        self.kernel_steps: list[str] = []
        self.numpy_steps: list[str] = []
        for i, step in enumerate(program.steps):
            _, ins, outs, attrs = self.calls[i]
            if step.op in KERNEL_OPS:
                self.calls[i] = (_kernel_call(step.op, self.opts), ins, outs, attrs)
                self.kernel_steps.append(step.op)
            else:
                self.numpy_steps.append(step.op)

    def fallback_steps(self) -> list[str]:
        """Ops of the steps that run on numpy rather than on emulated kernels."""
        return list(self.numpy_steps)
