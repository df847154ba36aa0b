"""all_gather(x) {axis_dim, cluster_axis, devices}: every device of a mesh axis gets the concatenation of the
group's local tensors along `axis_dim` (in device order along the axis). A 0-d input is stacked into shape [devices]
(how the shard pass combines per-device partial gradient norms).

Backward (the adjoint of the per-device linear map): reduce_scatter of the output gradient along the same dim.
Link traffic per device (ring): (N-1)/N of the gathered tensor.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from tilegraph.ops._ccl import CCL_ATTRS, check_common, check_dim, ring_link_bytes, single_device
from tilegraph.ops.base import Op, TensorType, register


@register
class AllGather(Op):
    name = "all_gather"
    attrs: ClassVar[dict] = {"axis_dim": -1, **CCL_ATTRS}

    def infer(self, inputs, attrs):
        x, n = check_common(self.name, inputs, attrs)
        if x.shape == ():
            return [TensorType((n,), x.dtype)]
        d = check_dim(self.name, "axis_dim", x, attrs)
        shape = list(x.shape)
        shape[d] *= n
        return [TensorType(tuple(shape), x.dtype)]

    def reference(self, inputs, attrs):
        single_device(self.name, attrs)
        (x,) = inputs
        return [x.reshape(1) if x.ndim == 0 else x.copy()]

    def collective(self, arrays, attrs):
        if arrays[0].ndim == 0:
            out = np.stack(arrays)
        else:
            out = np.concatenate(arrays, axis=attrs["axis_dim"])
        return [out.copy() for _ in arrays]

    def backward(self, g, node, grads):
        (dy,) = grads
        if dy is None:
            return [None]
        a = node.attrs
        if node.inputs[0].shape == ():
            raise NotImplementedError("all_gather of a scalar (norm stacking) has no backward rule")
        return [
            g.call(
                "reduce_scatter", dy, dim=a["axis_dim"], cluster_axis=a["cluster_axis"], devices=a["devices"]
            )
        ]

    def link_bytes(self, node) -> int:
        return ring_link_bytes(1.0, node.attrs["devices"], node.outputs[0].type.nbytes)

    def ccl_payload(self, node) -> tuple[str, int]:
        """(collective kind, bytes of the formula's tensor): the gathered tensor."""
        return "all_gather", node.outputs[0].type.nbytes
