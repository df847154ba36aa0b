"""rmsnorm(x[..., H], gamma[H]) {eps} -> x / sqrt(mean(x^2) + eps) * gamma,  and rmsnorm_bwd -> (dx, dgamma).

Backward, with r = 1/sqrt(mean(x^2) + eps), xhat = x*r and g = dy*gamma:
    dx = r * (g - xhat * mean(g * xhat))       dgamma = sum over leading dims of dy * xhat
"""

from __future__ import annotations

import numpy as np
from tilegraph.ops._util import expect_arity, expect_float, expect_same, float_attr
from tilegraph.ops.base import Op, TensorType, register
from tilegraph.ops.scratch import scratch

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


def _inv_rms(x2: np.ndarray, eps: float, key: tuple) -> np.ndarray:
    """r[M, 1] = 1/sqrt(mean(x^2) + eps) per row, computed with one batched dot (no [M, H] temporary)."""
    m, h = x2.shape
    r = scratch(key + ("r",), (m, 1), x2.dtype)
    # einsum 'ij,ij->i' reduces without materialising x*x.
    np.einsum("ij,ij->i", x2, x2, out=r[:, 0])
    r *= 1.0 / h
    r += eps
    np.sqrt(r, out=r)
    np.reciprocal(r, out=r)
    return r


@register
class RMSNorm(Op):
    name = "rmsnorm"
    attrs = {"eps": 1e-5}

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["x", "gamma"])
        _check(self.name, *inputs)
        float_attr(self.name, attrs, "eps")
        return [inputs[0]]

    def reference(self, inputs, attrs):
        return [rmsnorm_reference(*inputs, float(attrs["eps"]))]

    def numpy_forward(self, inputs, outputs, attrs):
        x, gamma = inputs
        (y,) = outputs
        x2 = x.reshape(-1, x.shape[-1])
        y2 = y.reshape(x2.shape)
        r = _inv_rms(x2, float(attrs["eps"]), ("rmsnorm", x2.shape, x2.dtype.str))
        np.multiply(x2, r, out=y2)
        y2 *= gamma

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

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["x", "gamma", "dy"])
        x, gamma, dy = inputs
        _check(self.name, x, gamma)
        expect_same(self.name, "x", x, "dy", dy)
        float_attr(self.name, attrs, "eps")
        return [x, gamma]

    def reference(self, inputs, attrs):
        return list(rmsnorm_bwd_reference(*inputs, float(attrs["eps"])))

    def numpy_forward(self, inputs, outputs, attrs):
        x, gamma, dy = inputs
        dx, dgamma = outputs
        h = x.shape[-1]
        x2, dy2, dx2 = x.reshape(-1, h), dy.reshape(-1, h), dx.reshape(-1, h)
        key = ("rmsnorm_bwd", x2.shape, x2.dtype.str)
        r = _inv_rms(x2, float(attrs["eps"]), key)
        xhat = scratch(key + ("xhat",), x2.shape, x2.dtype)
        np.multiply(x2, r, out=xhat)
        # dgamma = column sums of dy*xhat; dx (used as scratch for dy*xhat first) then overwritten.
        np.multiply(dy2, xhat, out=dx2)
        np.sum(dx2, axis=0, out=dgamma)
        # c[M] = mean(g * xhat) = mean(dy * gamma * xhat) = (dy*xhat) @ gamma / H
        c = scratch(key + ("c",), (x2.shape[0], 1), x2.dtype)
        np.matmul(dx2, gamma, out=c[:, 0])
        c *= 1.0 / h
        # dx = r * (dy*gamma - xhat*c)
        np.multiply(dy2, gamma, out=dx2)
        xhat *= c
        dx2 -= xhat
        dx2 *= r

    def flops(self, node):
        return 10 * node.inputs[0].type.numel
