"""swiglu_bwd(x[..., H], w1[H, F], w3[H, F], dy[..., F]) -> (dx, dw1, dw3): the backward of the fused SwiGLU gate.

With a = x w1, b = x w3, s = sigmoid(a) and h = silu(a) * b the forward's output:
    da = dy * b * s * (1 + a (1 - s))     db = dy * silu(a)
    dx = da w1^T + db w3^T                dw1 = x^T da          dw3 = x^T db   (x^T: summed over leading dims)
The fuse pass makes it from a training graph's linear, linear, silu_mul_bwd, linear, linear, add, linear_wgrad x2
(the backward of linear, linear, silu_mul), so a and b are recomputed rather than kept from the forward. On a
device it is the swiglu gate-backward kernel (kernels/swiglu/compute_bwd.cpp: a, b recomputed in DST, da and db
out) followed by three matmuls (kernels/swiglu/program_bwd.py says why it is split there).
"""

from __future__ import annotations

import numpy as np
from tilegraph.ops._util import expect_arity, expect_float, expect_same
from tilegraph.ops.base import Op, get_op, register
from tilegraph.ops.elementwise import silu_mul_bwd_reference
from tilegraph.ops.placement import P, R, Shard, last_dim, no_partial
from tilegraph.ops.scratch import scratch

from tilegraph.errors import ShapeError


def swiglu_bwd_reference(x, w1, w3, dy):
    x2 = x.reshape(-1, x.shape[-1])
    da, db = silu_mul_bwd_reference(x2 @ w1, x2 @ w3, dy.reshape(-1, dy.shape[-1]))
    dx = da @ w1.T + db @ w3.T
    return dx.reshape(x.shape), x2.T @ da, x2.T @ db


@register
class SwiGLUBwd(Op):
    name = "swiglu_bwd"
    attrs = {}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py), following the forward: w1 / w3 split on F (column
        parallel) give F-split weight gradients and a partial dx (it sums over F); a row (batch) split of x and dy
        with replicated weights gives row-split dx and partial weight gradients (summed over rows)."""
        x, w1 = no_partial(placements[0]), no_partial(placements[1])
        last = last_dim(node.inputs[0])
        if isinstance(w1, Shard) and w1.dim == 1 and w1.order is None:
            return [R, w1, w1, Shard(last)], [P, w1, w1]
        x = R if isinstance(x, Shard) and x.dim == last else x
        grads = P if isinstance(x, Shard) else R
        return [x, R, R, x], [x, grads, grads]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["x", "w1", "w3", "dy"])
        x, w1, w3, dy = inputs
        (h,) = get_op("swiglu").infer([x, w1, w3], {})
        expect_float(self.name, "dy", dy)
        if dy.shape != h.shape:
            raise ShapeError(f"op 'swiglu_bwd': dy {list(dy.shape)} must have the forward output's shape "
                             f"{list(h.shape)}")
        expect_same(self.name, "w1", w1, "w3", w3)
        return [x, w1, w3]

    def reference(self, inputs, attrs):
        return list(swiglu_bwd_reference(*inputs))

    def numpy_into(self, inputs, outputs, attrs):
        x, w1, w3, dy = inputs
        dx, dw1, dw3 = outputs
        x2, dy2, dx2 = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1]), dx.reshape(-1, dx.shape[-1])
        a = scratch(("swiglu_bwd", "a"), dy2.shape, x.dtype)
        b = scratch(("swiglu_bwd", "b"), dy2.shape, x.dtype)
        np.matmul(x2, w1, out=a)
        np.matmul(x2, w3, out=b)
        get_op("silu_mul_bwd").numpy_into([a, b, dy2], [a, b], {})  # da, db in place of a, b
        np.matmul(a, w1.T, out=dx2)
        dx2 += b @ w3.T
        np.matmul(x2.T, a, out=dw1)
        np.matmul(x2.T, b, out=dw3)

    def flops(self, node):
        x, w1, _, _ = node.inputs
        m = x.type.numel // w1.shape[0]
        return 5 * 2 * 2 * m * w1.shape[0] * w1.shape[1] + 10 * m * w1.shape[1]
