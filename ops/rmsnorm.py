"""rmsnorm(x[..., H], gamma[H]) {eps} -> x / sqrt(mean(x^2) + eps) * gamma,  and rmsnorm_bwd -> (dx, dgamma).

Backward, with r = 1/sqrt(mean(x^2) + eps), xhat = x*r and g = dy*gamma:
    dx = r * (g - xhat * mean(g * xhat))       dgamma = sum over leading dims of dy * xhat
"""

from __future__ import annotations

import numpy as np
from tilegraph.ops import cpu_kernels
from tilegraph.ops._util import expect_arity, expect_float, expect_same, float_attr
from tilegraph.ops.base import Op, TensorType, register
from tilegraph.ops.cpu_kernels import contiguous
from tilegraph.ops.parallel import as_rows, parallel_rows
from tilegraph.ops.placement import P, R, Shard, whole_rows

from tilegraph.errors import ShapeError


def rmsnorm_reference(x: np.ndarray, gamma: np.ndarray, eps: float) -> np.ndarray:
    dt = np.result_type(x.dtype, gamma.dtype)
    x = x.astype(dt, copy=False)
    r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + dt.type(eps))
    return x * r * gamma.astype(dt, copy=False)


def rmsnorm_bwd_reference(x: np.ndarray, gamma: np.ndarray, dy: np.ndarray, eps: float):
    dt = np.result_type(x.dtype, gamma.dtype, dy.dtype)
    x, gamma, dy = (a.astype(dt, copy=False) for a in (x, gamma, dy))
    r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + dt.type(eps))
    xhat = x * r
    g = dy * gamma
    dx = r * (g - xhat * np.mean(g * xhat, axis=-1, keepdims=True))
    dgamma = (dy * xhat).reshape(-1, x.shape[-1]).sum(axis=0)
    return dx, dgamma


def _check(op: str, x: TensorType, gamma: TensorType) -> None:
    expect_float(op, "x", x)
    expect_float(op, "gamma", gamma)
    if len(x.shape) < 1 or gamma.shape != (x.shape[-1],):
        raise ShapeError(
            f"op {op!r}: gamma {list(gamma.shape)} must be [H] with H = last dim of x {list(x.shape)}"
        )
    if x.dtype != gamma.dtype:
        raise ShapeError(f"op {op!r}: x is {x.dtype} but gamma is {gamma.dtype}; give both the same dtype")


@register
class RMSNorm(Op):
    name = "rmsnorm"
    attrs = {"eps": 1e-5}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): whole rows needed, so a hidden split is gathered first
        (distributed RMSNorm as all_gather -> normalize; the next column-parallel matmul needs whole rows anyway)."""
        x = whole_rows(placements[0], node.inputs[0])
        return [x, R], [x]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["x", "gamma"])
        _check(self.name, *inputs)
        float_attr(self.name, attrs, "eps")
        return [inputs[0]]

    def reference(self, inputs, attrs):
        return [rmsnorm_reference(*inputs, float(attrs["eps"]))]

    def numpy_into(self, inputs, outputs, attrs):
        x, gamma = inputs
        x2, y2 = as_rows(x), as_rows(outputs[0])
        contiguous(self.name, x=x2, gamma=gamma, y=y2)
        kernel = cpu_kernels.kernel("rmsnorm", x.dtype)
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
        dx, dgamma = g.call("rmsnorm_bwd", x, gamma, dy, eps=node.attrs["eps"])
        return [dx, dgamma]

    def flops(self, node):
        return 4 * node.inputs[0].type.numel


@register
class RMSNormBwd(Op):
    name = "rmsnorm_bwd"
    attrs = {"eps": 1e-5}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): whole rows; dgamma sums over rows, so it is a partial sum
        when the rows (batch) are split."""
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
        return list(rmsnorm_bwd_reference(*inputs, float(attrs["eps"])))

    def numpy_into(self, inputs, outputs, attrs):
        x, gamma, dy = inputs
        dx, dgamma = outputs
        x2, dy2, dx2 = as_rows(x), as_rows(dy), as_rows(dx)
        contiguous(self.name, x=x2, gamma=gamma, dy=dy2, dx=dx2)
        kernel = cpu_kernels.kernel("rmsnorm_bwd", x.dtype)
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
        return 10 * node.inputs[0].type.numel
