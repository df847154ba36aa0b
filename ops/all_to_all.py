"""all_to_all(x) {cluster_axis, devices, fill}: x is [devices, ...] on every device of a mesh axis; chunk j of
device i goes to device j, where it lands as chunk i (out_j[i] = in_i[j]), as MPI_Alltoall / ttnn's all-to-all.
The expert-parallel MoE uses it twice per expert layer: dispatch (tokens to the devices of their experts) and
combine (expert outputs back to the tokens' devices); see graph/passes/shard.py.

Backward: the map is a permutation that is its own inverse, so the gradient is all_to_all of the output gradient.
`fill` is the fraction of the chunks' rows that carry data (a dispatch buffer is sized for the worst case, every
local token to one device; a real dispatch sends only the routed rows): the link payload counts only those.
Link traffic per device on a ring: chunk d steps away crosses min(d, N-d) links (both directions used), so the
volume is sum_d min(d, N-d) / N of the buffer (graph/meshes.py ccl_seconds, kind "all_to_all").
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from tilegraph.ops._ccl import CCL_ATTRS, check_common, single_device
from tilegraph.ops.base import Op, register

from tilegraph.errors import ShapeError


def ring_hops(n: int) -> int:
    """Sum over destinations d = 1..n-1 of the ring distance min(d, n-d)."""
    return sum(min(d, n - d) for d in range(1, n))


@register
class AllToAll(Op):
    name = "all_to_all"
    attrs: ClassVar[dict] = {**CCL_ATTRS, "fill": 1.0}

    def infer(self, inputs, attrs):
        x, n = check_common(self.name, inputs, attrs)
        if not x.shape or x.shape[0] != n:
            raise ShapeError(f"op 'all_to_all': x {list(x.shape)} must be [devices={n}, ...], one chunk per device")
        fill = attrs["fill"]
        if isinstance(fill, bool) or not isinstance(fill, (int, float)) or not 0 < fill <= 1:
            raise ShapeError(f"op 'all_to_all': fill={fill!r} must be a fraction in (0, 1]")
        return [x]

    def reference(self, inputs, attrs):
        single_device(self.name, attrs)
        return [inputs[0].copy()]

    def collective(self, arrays, attrs):
        n = len(arrays)
        return [np.stack([arrays[i][j] for i in range(n)]) for j in range(n)]

    def backward(self, g, node, grads):
        (dy,) = grads
        return [None if dy is None else g.call("all_to_all", dy, **dict(node.attrs))]

    def link_bytes(self, node) -> int:
        n = node.attrs["devices"]
        return int(ring_hops(n) * node.attrs["fill"] * node.inputs[0].type.nbytes // n) if n > 1 else 0

    def ccl_payload(self, node) -> tuple[str, int]:
        return "all_to_all", int(node.inputs[0].type.nbytes * node.attrs["fill"])
