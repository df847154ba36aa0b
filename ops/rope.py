"""rope(x[B, S, n*D]) {heads, base, inverse} -> rotary position embedding, rotate-half convention.

For each head, element pairs (j, j + D/2) are rotated by angle pos * base^(-2j/D), pos = index along S from 0:
    y1 = x1*cos - x2*sin,   y2 = x2*cos + x1*sin.
inverse=True rotates by -angle; since the rotation is orthogonal, that is also the backward rule.
"""

from __future__ import annotations

import numpy as np
from tilegraph.ops._util import expect_arity, expect_float, expect_rank, float_attr, positive_int_attr
from tilegraph.ops.base import Op, register

from tilegraph.errors import ShapeError

_TABLES: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def rope_tables(seq: int, head_dim: int, base: float, dtype) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin of shape [S, D/2], computed in float64 and rounded once to `dtype` (cached)."""
    key = (seq, head_dim, float(base), np.dtype(dtype).str)
    if key not in _TABLES:
        half = head_dim // 2
        inv_freq = float(base) ** (-np.arange(half, dtype=np.float64) * 2.0 / head_dim)
        angle = np.arange(seq, dtype=np.float64)[:, None] * inv_freq[None, :]
        cos, sin = np.cos(angle).astype(dtype), np.sin(angle).astype(dtype)
        cos.flags.writeable = sin.flags.writeable = False
        _TABLES[key] = (cos, sin)
    return _TABLES[key]


def rope_reference(x: np.ndarray, heads: int, base: float, inverse: bool = False) -> np.ndarray:
    b, s, hd = x.shape
    d = hd // heads
    cos, sin = rope_tables(s, d, base, x.dtype)
    if inverse:
        sin = -sin
    xh = x.reshape(b, s, heads, d)
    x1, x2 = xh[..., : d // 2], xh[..., d // 2 :]
    c, sn = cos[None, :, None, :], sin[None, :, None, :]
    y = np.concatenate([x1 * c - x2 * sn, x2 * c + x1 * sn], axis=-1)
    return y.reshape(b, s, hd)


@register
class Rope(Op):
    name = "rope"
    attrs = {"heads": None, "base": 10000.0, "inverse": False}

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["x"])
        (x,) = inputs
        expect_float(self.name, "x", x)
        expect_rank(self.name, "x", x, 3, "[B, S, heads*head_dim]")
        heads = positive_int_attr(self.name, attrs, "heads")
        float_attr(self.name, attrs, "base")
        if x.shape[2] % heads:
            raise ShapeError(f"op 'rope': last dim {x.shape[2]} is not divisible by heads {heads}; fix heads")
        if (x.shape[2] // heads) % 2:
            raise ShapeError(
                f"op 'rope': head_dim {x.shape[2] // heads} is odd; rotate-half needs an even head_dim"
            )
        return [x]

    def reference(self, inputs, attrs):
        return [rope_reference(inputs[0], int(attrs["heads"]), float(attrs["base"]), bool(attrs["inverse"]))]

    def numpy_forward(self, inputs, outputs, attrs):
        (x,) = inputs
        (y,) = outputs
        b, s, hd = x.shape
        heads = int(attrs["heads"])
        d = hd // heads
        half = d // 2
        cos, sin = rope_tables(s, d, float(attrs["base"]), x.dtype)
        c, sn = cos[None, :, None, :], sin[None, :, None, :]
        xh, yh = x.reshape(b, s, heads, d), y.reshape(b, s, heads, d)
        x1, x2 = xh[..., :half], xh[..., half:]
        y1, y2 = yh[..., :half], yh[..., half:]
        # y1 = x1*c - x2*s ; y2 = x2*c + x1*s  (inverse flips the sign of s). y2 is used as scratch for y1's
        # second term, so no temporaries are allocated; x must not alias y.
        np.multiply(x2, sn, out=y2)
        np.multiply(x1, c, out=y1)
        if attrs["inverse"]:
            y1 += y2
        else:
            y1 -= y2
        np.multiply(x1, sn, out=y2)
        if attrs["inverse"]:
            np.negative(y2, out=y2)
        tmp = x2 * c  # one [B,S,n,D/2] temporary; cheaper than a second pass through y2
        y2 += tmp

    def backward(self, g, node, grads):
        (dy,) = grads
        if dy is None:
            return [None]
        a = node.attrs
        return [g.call("rope", dy, heads=a["heads"], base=a["base"], inverse=not a["inverse"])]

    def flops(self, node):
        return 3 * node.inputs[0].type.numel
