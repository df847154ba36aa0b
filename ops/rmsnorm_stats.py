"""rmsnorm_stats(x[..., W]) -> [..., 1]: the sum of squares of each row, the statistic of a distributed RMSNorm.

tt-metal's distributed RMSNorm (rms_norm_pre_all_gather -> all_gather of the statistics -> rms_norm_post_all_gather)
computes it per device on its slice of the hidden dim; the shard pass then sums the slices' statistics over the
mesh axis (a collective of one value per row, not of the hidden dim) and rmsnorm_apply normalizes each slice.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from tilegraph.ops._util import expect_arity, expect_float
from tilegraph.ops.base import Op, TensorType, register
from tilegraph.ops.placement import P, Shard, no_partial


@register
class RmsnormStats(Op):
    name = "rmsnorm_stats"
    attrs: ClassVar[dict] = {}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): a split hidden dim gives a partial sum; split rows pass."""
        x = no_partial(placements[0])
        if isinstance(x, Shard) and x.dim == len(node.inputs[0].shape) - 1:
            return [x], [P]
        return [x], [x]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["x"])
        expect_float(self.name, "x", inputs[0])
        return [TensorType(inputs[0].shape[:-1] + (1,), inputs[0].dtype)]

    def reference(self, inputs, attrs):
        x = inputs[0]
        return [np.sum(x * x, axis=-1, keepdims=True)]

    def flops(self, node):
        return 2 * node.inputs[0].type.numel
