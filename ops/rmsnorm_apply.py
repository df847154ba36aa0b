"""rmsnorm_apply(x[..., w], sumsq[..., 1], gamma[w]) {eps, width} -> x * gamma / sqrt(sumsq / width + eps).

The second half of a distributed RMSNorm (see rmsnorm_stats): each device normalizes its slice of the hidden dim
with the row statistics summed over the mesh axis; `width` is the whole hidden size the mean divides by.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from tilegraph.ops._util import expect_arity, expect_float, float_attr, positive_int_attr
from tilegraph.ops.base import Op, register
from tilegraph.ops.placement import R, Shard, no_partial

from tilegraph.errors import ShapeError


@register
class RmsnormApply(Op):
    name = "rmsnorm_apply"
    attrs: ClassVar[dict] = {"eps": 1e-5, "width": None}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): the statistics whole (partial sums reduced), gamma split
        like the hidden dim of x; split rows pass."""
        x = no_partial(placements[0])
        if isinstance(x, Shard) and x.dim == len(node.inputs[0].shape) - 1:
            return [x, R, Shard(0)], [x]
        return [x, x, R], [x]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["x", "sumsq", "gamma"])
        x, ss, gamma = inputs
        for what, t in (("x", x), ("sumsq", ss), ("gamma", gamma)):
            expect_float(self.name, what, t)
        positive_int_attr(self.name, attrs, "width")
        float_attr(self.name, attrs, "eps")
        if ss.shape != x.shape[:-1] + (1,) or gamma.shape != x.shape[-1:]:
            raise ShapeError(f"op 'rmsnorm_apply': x {list(x.shape)}, sumsq {list(ss.shape)} and gamma "
                             f"{list(gamma.shape)} must be [..., w], [..., 1] and [w]")  # fmt: skip
        return [x]

    def reference(self, inputs, attrs):
        x, ss, gamma = inputs
        eps, width = float(attrs["eps"]), int(attrs["width"])
        return [x / np.sqrt(ss / width + eps) * gamma]

    def flops(self, node):
        return 3 * node.inputs[0].type.numel
