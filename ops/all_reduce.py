"""all_reduce(x) {cluster_axis, devices, reduce}: every device of a mesh axis gets the sum (reduce="sum") or the
mean (reduce="mean": a data-parallel loss that is the mean of per-replica means) of the group's local tensors.

Backward (adjoint; the map is symmetric): all_reduce of the output gradient with the same reduction.
Link traffic per device (ring = reduce_scatter + all_gather): 2(N-1)/N of the tensor.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from tilegraph.ops._ccl import CCL_ATTRS, check_common, ring_link_bytes, single_device
from tilegraph.ops.base import Op, register

from tilegraph.errors import ShapeError


@register
class AllReduce(Op):
    name = "all_reduce"
    attrs: ClassVar[dict] = {**CCL_ATTRS, "reduce": "sum"}

    def infer(self, inputs, attrs):
        x, _ = check_common(self.name, inputs, attrs)
        if attrs["reduce"] not in ("sum", "mean"):
            raise ShapeError(f"op 'all_reduce': reduce={attrs['reduce']!r} must be 'sum' or 'mean'")
        return [x]

    def reference(self, inputs, attrs):
        single_device(self.name, attrs)
        return [inputs[0].copy()]

    def collective(self, arrays, attrs):
        total = np.sum(np.stack(arrays), axis=0)
        if attrs["reduce"] == "mean":
            total = total / len(arrays)
        return [total.astype(arrays[0].dtype, copy=True) for _ in arrays]

    def backward(self, g, node, grads):
        (dy,) = grads
        if dy is None:
            return [None]
        return [g.call("all_reduce", dy, **dict(node.attrs))]

    def flops(self, node):
        n = node.attrs["devices"]
        return node.inputs[0].type.numel * (n - 1) // n

    def link_bytes(self, node) -> int:
        return ring_link_bytes(2.0, node.attrs["devices"], node.inputs[0].type.nbytes)

    def ccl_payload(self, node) -> tuple[str, int]:
        return "all_reduce", node.inputs[0].type.nbytes
