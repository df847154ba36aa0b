"""layernorm(x[..., H], gamma[H]) {eps} -> (x - mean(x)) / sqrt(var(x) + eps) * gamma,  and layernorm_bwd -> (dx, dgamma).

The bias (beta) of a LayerNorm with bias is a separate `add_bias` (ops/bias.py), so this op and its backward stay
the one normalization both variants share. Backward, with r = 1/sqrt(var(x) + eps), xhat = (x - mean(x)) * r and
g = dy * gamma:
    dx = r * (g - mean(g) - xhat * mean(g * xhat))       dgamma = sum over leading dims of dy * xhat
"""

from __future__ import annotations

import numpy as np
from tilegraph.ops import cpu_kernels
from tilegraph.ops._util import expect_arity, expect_same, float_attr
from tilegraph.ops.base import Op, register
from tilegraph.ops.cpu_kernels import contiguous
from tilegraph.ops.parallel import as_rows, parallel_rows
from tilegraph.ops.placement import R, Shard, whole_rows
from tilegraph.ops.rmsnorm import _check


def _normalized(x: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(xhat, r) in x's dtype."""
    mu = np.mean(x, axis=-1, keepdims=True)
    xc = x - mu
    r = 1.0 / np.sqrt(np.mean(xc * xc, axis=-1, keepdims=True) + x.dtype.type(eps))
    return xc * r, r


def layernorm_reference(x: np.ndarray, gamma: np.ndarray, eps: float) -> np.ndarray:
    dt = np.result_type(x.dtype, gamma.dtype)
    xhat, _ = _normalized(x.astype(dt, copy=False), eps)
    return xhat * gamma.astype(dt, copy=False)


def layernorm_bwd_reference(x: np.ndarray, gamma: np.ndarray, dy: np.ndarray, eps: float):
    dt = np.result_type(x.dtype, gamma.dtype, dy.dtype)
    x, gamma, dy = (a.astype(dt, copy=False) for a in (x, gamma, dy))
    xhat, r = _normalized(x, eps)
    g = dy * gamma
    dx = r * (g - np.mean(g, axis=-1, keepdims=True) - xhat * np.mean(g * xhat, axis=-1, keepdims=True))
    dgamma = (dy * xhat).reshape(-1, x.shape[-1]).sum(axis=0)
    return dx, dgamma


@register
class LayerNorm(Op):
    name = "layernorm"
    attrs = {"eps": 1e-5}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): whole rows needed (mean and variance over the hidden dim),
        so a hidden split is gathered first; a row (batch) split passes."""
        x = whole_rows(placements[0], node.inputs[0])
        return [x, R], [x]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["x", "gamma"])
        _check(self.name, *inputs)
        float_attr(self.name, attrs, "eps")
        return [inputs[0]]

    def reference(self, inputs, attrs):
        return [layernorm_reference(*inputs, float(attrs["eps"]))]

    def numpy_into(self, inputs, outputs, attrs):
        # One pass per row in C++ (kernels/cpu/layernorm.cpp): the numpy formula took ~10x the time of the rmsnorm
        # kernel at nano-trickster's shapes (measured on the 2-core VM; notes/compare-600.md).
        x, gamma = inputs
        x2, y2 = as_rows(x), as_rows(outputs[0])
        contiguous(self.name, x=x2, gamma=gamma, y=y2)
        kernel = cpu_kernels.kernel("layernorm", x.dtype)
        h, eps = x2.shape[1], float(attrs["eps"])
        (xp, gp, yp), row = (a.ctypes.data for a in (x2, gamma, y2)), h * x.itemsize

        def rows(r0, r1, _):
            kernel(xp + r0 * row, gp, yp + r0 * row, r1 - r0, h, eps)

        parallel_rows(x2.shape[0], h, rows)

    def backward(self, g, node, grads):
        (dy,) = grads
        if dy is None:
            return [None, None]
        x, gamma = node.inputs
        dx, dgamma = g.call("layernorm_bwd", x, gamma, dy, eps=node.attrs["eps"])
        return [dx, dgamma]

    def flops(self, node):
        return 7 * node.inputs[0].type.numel


@register
class LayerNormBwd(Op):
    name = "layernorm_bwd"
    attrs = {"eps": 1e-5}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): whole rows; dgamma sums over rows, so it is a partial sum
        when the rows (batch) are split."""
        from tilegraph.ops.placement import P

        x = whole_rows(placements[0], node.inputs[0])
        return [x, R, x], [x, P if isinstance(x, Shard) else R]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["x", "gamma", "dy"])
        x, gamma, dy = inputs
        _check(self.name, x, gamma)
        expect_same(self.name, "x", x, "dy", dy)
        float_attr(self.name, attrs, "eps")
        return [x, gamma]

    def reference(self, inputs, attrs):
        return list(layernorm_bwd_reference(*inputs, float(attrs["eps"])))

    def numpy_into(self, inputs, outputs, attrs):
        x, gamma, dy = inputs
        dx, dgamma = outputs
        x2, dy2, dx2 = as_rows(x), as_rows(dy), as_rows(dx)
        contiguous(self.name, x=x2, gamma=gamma, dy=dy2, dx=dx2)
        kernel = cpu_kernels.kernel("layernorm_bwd", x.dtype)
        h, eps = x2.shape[1], float(attrs["eps"])
        partials = {}  # first row of a chunk -> that chunk's contribution to dgamma
        (xp, gp, dyp, dxp), row = (a.ctypes.data for a in (x2, gamma, dy2, dx2)), h * x.itemsize

        def rows(r0, r1, _):
            part = partials[r0] = np.zeros(h, x.dtype)  # fresh: read after the worker has moved on
            kernel(xp + r0 * row, gp, dyp + r0 * row, dxp + r0 * row, part.ctypes.data, r1 - r0, h, eps)

        parallel_rows(x2.shape[0], h, rows)
        dgamma.fill(0)
        for r0 in sorted(partials):  # fixed order: the result does not depend on thread timing
            dgamma += partials[r0]

    def flops(self, node):
        return 12 * node.inputs[0].type.numel
