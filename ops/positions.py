"""Absolute positions: position_ids {batch, seq, offset} -> int32 [B, S] (offset..offset+S-1 in every row; a learned
position table is looked up with `embedding`), and sinusoidal {batch, seq, hidden, dtype, offset} -> [B, S, H], rows
offset..offset+S-1 of the fixed table of "Attention Is All You Need": pe[s, 2i] = sin(s / 10000^(2i/H)),
pe[s, 2i+1] = cos(s / 10000^(2i/H)). `offset` is 0 in training; the inference graphs (graph/inference.py) use it for
the positions a decode step or a prefill chunk computes.

Both are constants of the graph (no inputs, no gradient), built on every device whole (replicated)."""

from __future__ import annotations

import numpy as np
from tilegraph.ops._util import DTYPE_NAMES, positive_int_attr
from tilegraph.ops.base import Op, TensorType, register
from tilegraph.ops.placement import R

from tilegraph.errors import ShapeError


def sinusoidal_table(seq: int, hidden: int, dtype, offset: int = 0) -> np.ndarray:
    """[S, H]: rows offset..offset+S-1, computed in float64 and rounded once to dtype."""
    i = np.arange(0, hidden, 2, dtype=np.float64)
    angle = np.arange(offset, offset + seq, dtype=np.float64)[:, None] / (10000.0 ** (i / hidden))[None, :]
    pe = np.zeros((seq, hidden), np.float64)
    pe[:, 0::2] = np.sin(angle)
    pe[:, 1::2] = np.cos(angle)[:, : hidden // 2]
    return pe.astype(dtype)


def _offset(op: str, attrs) -> int:
    off = attrs.get("offset", 0)
    if isinstance(off, bool) or not isinstance(off, (int, np.integer)) or off < 0:
        raise ShapeError(f"op {op!r}: offset={off!r} must be a non-negative position (the first row's)")
    return int(off)


class _Constant(Op):
    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): a constant is replicated."""
        return [], [R]

    def backward(self, g, node, grads):
        return []


@register
class PositionIds(_Constant):
    name = "position_ids"
    attrs = {"batch": None, "seq": None, "offset": 0}

    def infer(self, inputs, attrs):
        if inputs:
            raise ShapeError("op 'position_ids' takes no inputs; give batch= and seq= attributes")
        b, s = (positive_int_attr(self.name, attrs, k) for k in ("batch", "seq"))
        _offset(self.name, attrs)
        return [TensorType((b, s), "int32")]

    def reference(self, inputs, attrs):
        b, s, off = int(attrs["batch"]), int(attrs["seq"]), _offset(self.name, attrs)
        return [np.broadcast_to(np.arange(off, off + s, dtype=np.int32), (b, s)).copy()]


@register
class Sinusoidal(_Constant):
    name = "sinusoidal"
    attrs = {"batch": None, "seq": None, "hidden": None, "dtype": "float32", "offset": 0}

    def infer(self, inputs, attrs):
        if inputs:
            raise ShapeError("op 'sinusoidal' takes no inputs; give batch=, seq= and hidden= attributes")
        b, s, h = (positive_int_attr(self.name, attrs, k) for k in ("batch", "seq", "hidden"))
        if attrs["dtype"] not in DTYPE_NAMES[:2]:
            raise ShapeError(f"op 'sinusoidal': dtype={attrs['dtype']!r} must be float32 or float64")
        _offset(self.name, attrs)
        return [TensorType((b, s, h), attrs["dtype"])]

    def reference(self, inputs, attrs):
        b, s, h = int(attrs["batch"]), int(attrs["seq"]), int(attrs["hidden"])
        table = sinusoidal_table(s, h, attrs["dtype"], _offset(self.name, attrs))
        return [np.broadcast_to(table, (b, s, h)).copy()]

    def flops(self, node):
        return 0
