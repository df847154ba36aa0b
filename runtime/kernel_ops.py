"""How to run one kernel op (kernels/registry.py: KERNEL_OPS) through a kernel backend.

Its KernelOp (kernels/<op>/program.py) builds the ProgramDescription and lays the host arrays out as the device
tensors; the program runs on a kernel backend; the KernelOp turns the device outputs back into the op's outputs.
Backends: "emu" (kernels/emu emulator via runtime.emulator.run_program) and "ttnn" (ttnn.generic_op on a card).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from tilegraph.kernels.registry import DeviceOptions, get_kernel_op
from tilegraph.ops import get_op

from tilegraph.errors import DeviceError

KERNEL_BACKENDS = ("emu", "ttnn")


def run_kernel_op(op: str, inputs: Sequence[np.ndarray], attrs: Mapping[str, object], backend: str = "emu",
                  opts: DeviceOptions | None = None) -> list[np.ndarray]:
    """Run one kernel op on `backend` ("emu" or "ttnn"); returns the op's outputs as float32 arrays.

    rmsnorm takes an optional third input, a residual: it then returns [norm(x + residual) * gamma, x + residual]."""
    opts = opts or DeviceOptions()
    kernel_op = get_kernel_op(op)
    attrs = {**get_op(op).attrs, **attrs}  # defaults live only in Op.attrs
    inputs = [np.asarray(a, np.float32) for a in inputs]
    desc, device_inputs = kernel_op.program(inputs, attrs, opts)
    if backend == "emu":
        from tilegraph.runtime.emulator import run_program

        outputs = run_program(desc, device_inputs)
    elif backend == "ttnn":
        from tilegraph.runtime.ttnn_program import run_on_device

        outputs = run_on_device(desc, device_inputs)
    else:
        raise DeviceError(f"backend {backend!r} cannot run custom kernels; use one of {', '.join(KERNEL_BACKENDS)}")
    return [np.asarray(o, np.float32) for o in kernel_op.unpack(outputs, inputs, attrs)]
