"""take_last(x[B, S, W]) -> [B, 1, W]: the last position of every sequence.

Prefill computes logits for the last token only (the one the first generated token follows), as tt-metal's
prefill does; this op cuts the final hidden states down before the output projection.
"""

from __future__ import annotations

from typing import ClassVar

from tilegraph.ops._util import expect_arity, expect_float, expect_rank
from tilegraph.ops.base import Op, TensorType, register
from tilegraph.ops.placement import R, Shard


@register
class TakeLast(Op):
    name = "take_last"
    attrs: ClassVar[dict] = {}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): a per-row copy, so batch and feature splits and partial
        sums pass; a split sequence is gathered first (only the last device holds the last position)."""
        x = placements[0]
        if isinstance(x, Shard) and x.dim == 1:
            x = R
        return [x], [x]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["x"])
        (x,) = inputs
        expect_float(self.name, "x", x)
        expect_rank(self.name, "x", x, 3, "[B, S, W]")
        return [TensorType((x.shape[0], 1, x.shape[2]), x.dtype)]

    def reference(self, inputs, attrs):
        return [inputs[0][:, -1:, :].copy()]
