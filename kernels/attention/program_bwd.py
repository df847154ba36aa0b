"""The attention_bwd KernelOp: helper bwd-attn's kernels and builder (kernels/attention/backward.py) registered in
kernels/registry.py, so the place pass puts a training Program's attention_bwd steps on `kernel:attention_bwd`."""

from __future__ import annotations

from tilegraph.kernels.attention import backward
from tilegraph.kernels.registry import DeviceOptions, KernelOp, register_kernel_op


@register_kernel_op
class AttentionBwdKernel(KernelOp):
    """attention_bwd(q, k, v, o, lse, do) -> [dq, dk, dv]."""

    name = "attention_bwd"

    def program(self, inputs, attrs, opts):
        return backward.build(inputs, attrs, opts.dtype, opts.grid, dict(opts.knobs))

    def unpack(self, outputs, inputs, attrs):
        return backward.unpack(outputs, inputs)

    def input_formats(self, dtype, count, knobs):
        return backward.input_formats(dtype, count)

    def case_strategy(self, common, small):
        return backward.case_strategy(common, small)

    def make_inputs(self, case, rng, randn, grid):
        inputs, attrs, (dtype, grid, knobs) = backward.make_inputs(case, rng, randn, grid)
        return inputs, attrs, DeviceOptions(dtype, grid, knobs)

    def error_bounds(self, x64, attrs, refs, backend):
        return backward.error_bounds(x64, attrs, refs, backend)
