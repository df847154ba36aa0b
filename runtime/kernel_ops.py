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
    return run_kernel_op_spmd(op, [inputs], attrs, backend, opts)[0]


def run_kernel_op_spmd(op: str, inputs_per_device: Sequence[Sequence[np.ndarray]], attrs: Mapping[str, object],
                       backend: str = "emu", opts: DeviceOptions | None = None, mesh=None) -> list[list[np.ndarray]]:
    """One kernel op on every device of a mesh, SPMD: one ProgramDescription (the devices' local shapes are equal,
    as the shard pass makes them), each device's own data; outputs per device, in the order of the inputs.

    On "emu" the devices run one after another in the emulator; on "ttnn" one generic_op runs on `mesh` (a ttnn
    MeshDevice whose devices are in the row-major order of `inputs_per_device`; default: device 0 alone)."""
    opts = opts or DeviceOptions()
    kernel_op = get_kernel_op(op)
    attrs = {**get_op(op).attrs, **attrs}  # defaults live only in Op.attrs
    per_device = [[np.asarray(a, np.float32) for a in inputs] for inputs in inputs_per_device]
    built = [kernel_op.program(inputs, attrs, opts) for inputs in per_device]
    desc = built[0][0]
    if any(d != desc for d, _ in built[1:]):
        raise DeviceError(f"op {op!r}: the devices' programs differ (their local shapes do); an SPMD kernel step "
                          f"needs equal shards on every device")
    if backend == "emu":
        from tilegraph.runtime.emulator import run_program

        outputs = [run_program(desc, device_inputs) for _, device_inputs in built]
    elif backend == "ttnn":
        from tilegraph.runtime.ttnn_program import run_on_mesh

        outputs = run_on_mesh(desc, [device_inputs for _, device_inputs in built], mesh, kernel_op.device_finish)
    else:
        raise DeviceError(f"backend {backend!r} cannot run custom kernels; use one of {', '.join(KERNEL_BACKENDS)}")
    return [[np.asarray(o, np.float32) for o in kernel_op.unpack(out, inputs, attrs)]
            for out, inputs in zip(outputs, per_device)]
