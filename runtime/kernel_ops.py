"""The ops that have custom tt-metal kernels, and how to run one through a kernel backend.

For each op: build its ProgramDescription (the builder at the end of ops/<op>.py), lay the host arrays out as the
device tensors, run the program on a kernel backend, and turn the device outputs back into the op's outputs.
Backends: "emu" (kernels/emu emulator via runtime.emulator.run_program) and "ttnn" (ttnn.generic_op on a card).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from tilegraph.ops import attention as _attention
from tilegraph.ops import rmsnorm as _rmsnorm
from tilegraph.ops import swiglu as _swiglu
from tilegraph.ops.program import ProgramDescription

from tilegraph.errors import DeviceError

KERNEL_OPS = ("rmsnorm", "swiglu", "attention", "attention_bwd")
KERNEL_BACKENDS = ("emu", "ttnn")


@dataclass(frozen=True)
class DeviceOptions:
    """How a kernel op is placed on the device: data format of its inputs, core grid, builder knobs."""

    dtype: str = "bfloat16"  # device format of the op's inputs ("bfloat16" or "bfloat8_b")
    grid: tuple[int, int] = (8, 8)
    knobs: Mapping[str, object] = field(default_factory=dict)  # e.g. max_block, q_chunk, k_chunk, residual


def build(op: str, inputs: Sequence[np.ndarray], attrs: Mapping[str, object], opts: DeviceOptions
          ) -> tuple[ProgramDescription, dict[str, np.ndarray]]:
    """(program description, device input arrays) for one call of a kernel op."""
    knobs = dict(opts.knobs)
    if op == "rmsnorm":
        x, gamma, *rest = inputs
        residual = rest[0] if rest else None
        desc = _rmsnorm.rmsnorm_program(x.shape, opts.dtype, eps=float(attrs.get("eps", 1e-5)), gamma=True,
                                        residual=residual is not None, grid=opts.grid, **knobs)
        return desc, _rmsnorm.rmsnorm_device_inputs(x, gamma, residual)
    if op == "swiglu":
        x, w1, w3 = inputs
        m = int(np.prod(x.shape[:-1])) if x.ndim > 1 else 1
        desc = _swiglu.swiglu_program(m, w1.shape[0], w1.shape[1], opts.dtype, grid=opts.grid, **knobs)
        return desc, _swiglu.swiglu_device_inputs(x, w1, w3)
    if op == "attention":
        q, k, v = inputs
        heads = int(attrs["heads"])
        kv_heads = int(attrs.get("kv_heads") or heads)
        b, s, hd = q.shape
        desc = _attention.attention_program(b, s, heads, hd // heads, kv_heads, opts.dtype,
                                            causal=bool(attrs.get("causal", True)), scale=attrs.get("scale"),
                                            grid=opts.grid, **knobs)
        return desc, _attention.attention_device_inputs(q, k, v, heads, kv_heads, desc)
    if op == "attention_bwd":
        from tilegraph.kernels.attention import backward

        return backward.build(inputs, attrs, opts.dtype, opts.grid, knobs)
    raise DeviceError(f"op {op!r} has no custom kernel; kernel ops are {', '.join(KERNEL_OPS)}")


def unpack(op: str, outputs: Mapping[str, np.ndarray], inputs: Sequence[np.ndarray], attrs) -> list[np.ndarray]:
    if op == "rmsnorm":
        return _rmsnorm.rmsnorm_device_outputs(dict(outputs), inputs[0].shape)
    if op == "swiglu":
        return _swiglu.swiglu_device_outputs(dict(outputs), inputs[0].shape)
    if op == "attention_bwd":
        from tilegraph.kernels.attention import backward

        return backward.unpack(outputs, inputs)
    return _attention.attention_device_outputs(dict(outputs), inputs[0].shape, int(attrs["heads"]))


def run_kernel_op(op: str, inputs: Sequence[np.ndarray], attrs: Mapping[str, object], backend: str = "emu",
                  opts: DeviceOptions | None = None) -> list[np.ndarray]:
    """Run one kernel op on `backend` ("emu" or "ttnn"); returns the op's outputs as float32 arrays.

    rmsnorm takes an optional third input, a residual: it then returns [norm(x + residual) * gamma, x + residual]."""
    opts = opts or DeviceOptions()
    inputs = [np.asarray(a, np.float32) for a in inputs]
    desc, device_inputs = build(op, inputs, attrs, opts)
    if backend == "emu":
        from tilegraph.runtime.emulator import run_program

        outputs = run_program(desc, device_inputs)
    elif backend == "ttnn":
        from tilegraph.runtime.ttnn_program import run_on_device

        outputs = run_on_device(desc, device_inputs)
    else:
        raise DeviceError(f"backend {backend!r} cannot run custom kernels; use one of {', '.join(KERNEL_BACKENDS)}")
    return [np.asarray(o, np.float32) for o in unpack(op, outputs, inputs, attrs)]
