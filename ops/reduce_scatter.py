"""reduce_scatter(x) {dim, cluster_axis, devices}: the group's local tensors are summed, and device k of the axis
keeps the k-th of `devices` equal pieces of the sum along `dim`.

Backward (adjoint): all_gather of the output gradient along the same dim.
Link traffic per device (ring): (N-1)/N of the (un-scattered) input tensor.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from tilegraph.ops._ccl import CCL_ATTRS, ring_link_bytes, single_device, split_type
from tilegraph.ops.base import Op, register


@register
class ReduceScatter(Op):
    name = "reduce_scatter"
    attrs: ClassVar[dict] = {"dim": -1, **CCL_ATTRS}

    def infer(self, inputs, attrs):
        return [split_type(self.name, inputs, attrs)]

    def reference(self, inputs, attrs):
        single_device(self.name, attrs)
        return [inputs[0].copy()]

    def collective(self, arrays, attrs):
        total = np.sum(np.stack(arrays), axis=0)
        return [p.copy() for p in np.split(total, len(arrays), axis=attrs["dim"])]

    def backward(self, g, node, grads):
        (dy,) = grads
        if dy is None:
            return [None]
        a = node.attrs
        return [
            g.call("all_gather", dy, axis_dim=a["dim"], cluster_axis=a["cluster_axis"], devices=a["devices"])
        ]

    def flops(self, node):
        n = node.attrs["devices"]
        return node.inputs[0].type.numel * (n - 1) // n

    def link_bytes(self, node) -> int:
        return ring_link_bytes(1.0, node.attrs["devices"], node.inputs[0].type.nbytes)

    def ccl_payload(self, node) -> tuple[str, int]:
        return "reduce_scatter", node.inputs[0].type.nbytes
