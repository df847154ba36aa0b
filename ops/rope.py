"""rope(x[B, S, n*D]) {heads, base, inverse, offset} -> rotary position embedding, rotate-half convention.

For each head, element pairs (j, j + D/2) are rotated by angle pos * base^(-2j/D), pos = offset + index along S
(offset > 0: the new tokens of a decode step, which sit after the cached context):
    y1 = x1*cos - x2*sin,   y2 = x2*cos + x1*sin.
inverse=True rotates by -angle; since the rotation is orthogonal, that is also the backward rule.
"""

from __future__ import annotations

import numpy as np
from tilegraph.ops import cpu_kernels
from tilegraph.ops._util import expect_arity, expect_float, expect_rank, float_attr, positive_int_attr
from tilegraph.ops.base import Op, register
from tilegraph.ops.cpu_kernels import contiguous
from tilegraph.ops.parallel import as_rows, parallel_rows
from tilegraph.ops.placement import R, Shard

from tilegraph.errors import ShapeError

_TABLES: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}


def rope_tables(seq: int, head_dim: int, base: float, dtype, offset: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """cos, sin of shape [S, D/2] for positions offset..offset+S-1, computed in float64 and rounded once to
    `dtype` (cached)."""
    key = (seq, head_dim, float(base), np.dtype(dtype).str, int(offset))
    if key not in _TABLES:
        half = head_dim // 2
        inv_freq = float(base) ** (-np.arange(half, dtype=np.float64) * 2.0 / head_dim)
        angle = np.arange(offset, offset + seq, dtype=np.float64)[:, None] * inv_freq[None, :]
        cos, sin = np.cos(angle).astype(dtype), np.sin(angle).astype(dtype)
        cos.flags.writeable = sin.flags.writeable = False
        _TABLES[key] = (cos, sin)
    return _TABLES[key]


def rope_reference(x: np.ndarray, heads: int, base: float, inverse: bool = False, offset: int = 0) -> np.ndarray:
    b, s, hd = x.shape
    d = hd // heads
    cos, sin = rope_tables(s, d, base, x.dtype, offset)
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
    attrs = {"heads": None, "base": 10000.0, "inverse": False, "offset": 0}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): linear and per head, so partial sums and head splits pass
        (the shard pass sets `heads` to the local count); positions are global, so the sequence is not split."""
        x = placements[0]
        if isinstance(x, Shard) and x.dim == 1:
            x = R
        return [x], [x]

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
        return [rope_reference(inputs[0], int(attrs["heads"]), float(attrs["base"]), bool(attrs["inverse"]),
                               int(attrs["offset"]))]  # fmt: skip

    def numpy_into(self, inputs, outputs, attrs):
        (x,) = inputs
        (y,) = outputs
        _, s, hd = x.shape
        heads = int(attrs["heads"])
        half = hd // heads // 2
        cos, sin = rope_tables(s, 2 * half, float(attrs["base"]), x.dtype, int(attrs["offset"]))
        x2, y2 = as_rows(x), as_rows(y)
        contiguous(self.name, x=x2, y=y2)
        kernel = cpu_kernels.kernel("rope", x.dtype)
        sign = -1.0 if attrs["inverse"] else 1.0

        (xp, yp, cp, sp), row = (a.ctypes.data for a in (x2, y2, cos, sin)), hd * x.itemsize

        def rows(r0, r1, _):
            kernel(xp + r0 * row, yp + r0 * row, cp, sp, r1 - r0, r0, s, heads, half, sign)

        parallel_rows(x2.shape[0], hd, rows)

    def backward(self, g, node, grads):
        (dy,) = grads
        if dy is None:
            return [None]
        a = node.attrs
        return [g.call("rope", dy, heads=a["heads"], base=a["base"], inverse=not a["inverse"], offset=a["offset"])]

    def flops(self, node):
        return 3 * node.inputs[0].type.numel
