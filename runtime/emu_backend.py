"""The `emu` backend: a Program whose `kernel:<op>` steps run through the kernel emulator.

Steps the place pass put on `kernel:<op>` (ops with custom kernels, kernels/registry.py) are executed by building
their ProgramDescription and running the C++ kernels in kernels/emu on the host, in the device data format and on
the core grid of the Program's device options (`program.device`, from the compile Target); results are cast back to
the step's float32 buffers. Every other step runs as the numpy backend runs it (`numpy` or `reference`);
`fallback_steps()` lists them, so nothing falls back silently. A sharded Program (compiled for a mesh) runs SPMD on
the virtual mesh: each kernel step once per device on that device's shard (runtime/mesh_backend.py SpmdExecutor).
"""

from __future__ import annotations

import numpy as np
from tilegraph.kernels.registry import DeviceOptions
from tilegraph.runtime import numpy_backend
from tilegraph.runtime.kernel_ops import run_kernel_op
from tilegraph.runtime.mesh_backend import SpmdExecutor


def _kernel_call(op_name: str, opts: DeviceOptions):
    def run(inputs, outputs, attrs):
        for out, res in zip(outputs, run_kernel_op(op_name, inputs, attrs, "emu", opts)):
            np.copyto(out, res.reshape(out.shape), casting="same_kind")

    return run


def Executor(program):  # noqa: N802 - the backend module's constructor (runtime/program.py BACKENDS)
    return SpmdExecutor(program) if program.graph.mesh is not None else HostExecutor(program)


class HostExecutor(numpy_backend.Executor):
    def __init__(self, program):
        self.kernel_steps: list[str] = []
        self.numpy_steps: list[str] = []
        super().__init__(program)

    def step_function(self, step):
        if step.impl.startswith("kernel:"):
            self.kernel_steps.append(step.op)
            return _kernel_call(step.impl.removeprefix("kernel:"), self.program.device)
        self.numpy_steps.append(step.op)
        return super().step_function(step)

    def fallback_steps(self) -> list[str]:
        """Ops of the steps that run on numpy rather than on emulated kernels."""
        return list(self.numpy_steps)
