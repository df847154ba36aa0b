"""dropout(x, step) {p, seed, salt} -> x * keep / (1 - p), keep = [u >= p] with u uniform in [0, 1) drawn by a
counter-based hash of (seed, salt, step, element index).

The mask is a pure function of those four numbers, so nothing but the step counter (which every checkpoint
stores) is needed to reproduce it: a resumed run draws exactly the masks it would have drawn, and the backward
rule is the same op on dy (the same mask). `salt` tells the dropout sites of one step apart (graph/build.py gives
each site its own). Training graphs only: the forward graph used for validation and sampling has no dropout.
"""

from __future__ import annotations

import math

import numpy as np
from tilegraph.ops._util import expect_arity, expect_float, expect_scalar, float_attr
from tilegraph.ops.base import Op, register
from tilegraph.ops.placement import R

from tilegraph.errors import ShapeError

_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer (a bijection of uint64 with good avalanche)."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def mask_key(seed: int, salt: int, step: int) -> np.uint64:
    """The per-(seed, salt, step) key the element draws are offset by."""
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps modulo 2^64 by design
        return _mix(np.uint64(seed & (2**64 - 1)) * _GOLDEN + np.uint64(salt) * _M1 + np.uint64(step) * _M2)


def keep_threshold(p: float) -> int:
    """Element i is kept when its 53 random bits u satisfy u * 2^-53 >= p, i.e. u >= ceil(p * 2^53) (both sides
    exact in float64): the integer form the C++ kernels compare against (kernels/cpu/attention.cpp)."""
    return math.ceil(p * 2.0**53)


def keep_mask(shape, p: float, seed: int, salt: int, step: int) -> np.ndarray:
    """bool mask of `shape`: True where the element is kept (probability 1 - p); element i (flat, C order) draws
    splitmix64(i * GOLDEN + mask_key) >> 11."""
    key = mask_key(seed, salt, step)
    with np.errstate(over="ignore"):
        idx = np.arange(int(np.prod(shape, dtype=np.int64)), dtype=np.uint64)
        u = _mix(idx * _GOLDEN + key) >> np.uint64(11)  # 53 random bits
    return (u.astype(np.float64) * 2.0**-53 >= p).reshape(shape)


def dropout_probability(op: str, attrs, key: str) -> float:
    """The dropout probability attribute `key` of `op`, checked: a number in [0, 1)."""
    p = float_attr(op, attrs, key)
    if not 0 <= p < 1:
        raise ShapeError(f"op {op!r}: {key}={p} must lie in [0, 1); set the spec's dropout below 1")
    return p


def dropout_reference(x: np.ndarray, step, p: float, seed: int, salt: int) -> np.ndarray:
    if p == 0:
        return x.copy()
    keep = keep_mask(x.shape, p, seed, salt, int(np.asarray(step)))
    return np.where(keep, x / x.dtype.type(1.0 - p), 0).astype(x.dtype, copy=False)


@register
class Dropout(Op):
    name = "dropout"
    attrs = {"p": 0.0, "seed": 0, "salt": 0}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): the mask is drawn by global element index, so x is made
        whole first (a training-only op of the CPU trainer; a device version would offset the counter per shard)."""
        return [R, R], [R]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["x", "step"])
        x, step = inputs
        expect_float(self.name, "x", x)
        expect_scalar(self.name, "step", step)
        dropout_probability(self.name, attrs, "p")
        return [x]

    def reference(self, inputs, attrs):
        x, step = inputs
        return [dropout_reference(x, step, float(attrs["p"]), int(attrs["seed"]), int(attrs["salt"]))]

    def backward(self, g, node, grads):
        (dy,) = grads
        if dy is None:
            return [None, None]
        return [g.call("dropout", dy, node.inputs[1], **dict(node.attrs)), None]

    def flops(self, node):
        return 2 * node.outputs[0].type.numel
