"""swiglu(x[..., H], w1[H, F], w3[H, F]) -> silu(x @ w1) * (x @ w3): the fused MLP gate the custom kernel computes.

graph.build emits the unfused linear, linear, silu_mul form for training; a fuse pass may rewrite it to this op.
Its backward rule decomposes into the unfused ops (recomputing the two projections).
"""

from __future__ import annotations

import numpy as np
from tilegraph.ops._util import expect_arity, expect_float
from tilegraph.ops.base import Op, TensorType, get_op, register
from tilegraph.ops.elementwise import silu_mul_reference
from tilegraph.ops.placement import R, Shard, last_dim, no_partial
from tilegraph.ops.scratch import scratch

from tilegraph.errors import ShapeError


def swiglu_reference(x: np.ndarray, w1: np.ndarray, w3: np.ndarray) -> np.ndarray:
    return silu_mul_reference(x @ w1, x @ w3)


@register
class SwiGLU(Op):
    name = "swiglu"
    attrs = {}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): like its column-parallel linears: w1 and w3 split on F give
        an F-split output from whole rows of x; replicated weights let a row (batch) split of x pass."""
        x, w1 = no_partial(placements[0]), no_partial(placements[1])
        last = last_dim(node.inputs[0])
        if isinstance(w1, Shard) and w1.dim == 1 and w1.order is None:
            return [R, w1, w1], [Shard(last)]
        x = R if isinstance(x, Shard) and x.dim == last else x
        return [x, R, R], [x]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["x", "w1", "w3"])
        x, w1, w3 = inputs
        for what, t in (("x", x), ("w1", w1), ("w3", w3)):
            expect_float(self.name, what, t)
            if t.dtype != x.dtype:
                raise ShapeError(f"op 'swiglu': x is {x.dtype} but {what} is {t.dtype}; give all the same dtype")
        if len(x.shape) < 1 or len(w1.shape) != 2 or w1.shape[0] != x.shape[-1]:
            raise ShapeError(
                f"op 'swiglu': w1 {list(w1.shape)} must be [H, F] with H = last dim of x {list(x.shape)}"
            )
        if w3.shape != w1.shape:
            raise ShapeError(f"op 'swiglu': w3 {list(w3.shape)} must have w1's shape {list(w1.shape)}")
        return [TensorType(x.shape[:-1] + (w1.shape[1],), x.dtype)]

    def reference(self, inputs, attrs):
        return [swiglu_reference(*inputs)]

    def numpy_into(self, inputs, outputs, attrs):
        x, w1, w3 = inputs
        (y,) = outputs
        x2, y2 = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
        gate = scratch(("swiglu", "gate"), y2.shape, y.dtype)
        up = scratch(("swiglu", "up"), y2.shape, y.dtype)
        np.matmul(x2, w1, out=gate)
        np.matmul(x2, w3, out=up)
        get_op("silu_mul").numpy_into([gate, up], [y2], {})

    def backward(self, g, node, grads):
        (dy,) = grads
        if dy is None:
            return [None, None, None]
        x, w1, w3 = node.inputs
        a = g.call("linear", x, w1)
        b = g.call("linear", x, w3)
        da, db = g.call("silu_mul_bwd", a, b, dy)
        dx = g.call("add", g.call("linear", da, w1, transpose_w=True), g.call("linear", db, w3, transpose_w=True))
        return [dx, g.call("linear_wgrad", x, da), g.call("linear_wgrad", x, db)]

    def flops(self, node):
        x, w1, _ = node.inputs
        m = x.type.numel // w1.shape[0]
        return 2 * 2 * m * w1.shape[0] * w1.shape[1] + 5 * m * w1.shape[1]
