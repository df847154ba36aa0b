"""mesh_partition(x) {dim, cluster_axis, devices}: a replicated tensor becomes sharded: device k of the mesh axis
keeps the k-th of `devices` equal pieces along `dim` (ttnn's mesh_partition). No data crosses a link; it is a
local slice, which the shard pass uses where an op wants a sharded operand that is replicated (e.g. the gradient
of the logits entering a vocab-parallel output projection).

Its adjoint is not a graph op we have (each device would embed its slice into zeros), so it has no backward rule:
the shard pass runs after autodiff and never needs one.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from tilegraph.ops._ccl import CCL_ATTRS, single_device, split_type
from tilegraph.ops.base import Op, register


@register
class MeshPartition(Op):
    name = "mesh_partition"
    attrs: ClassVar[dict] = {"dim": -1, **CCL_ATTRS}

    def infer(self, inputs, attrs):
        return [split_type(self.name, inputs, attrs)]

    def reference(self, inputs, attrs):
        single_device(self.name, attrs)
        return [inputs[0].copy()]

    def collective(self, arrays, attrs):
        return [np.split(a, len(arrays), axis=attrs["dim"])[k].copy() for k, a in enumerate(arrays)]

    def bytes_moved(self, node):
        return 2 * node.outputs[0].type.nbytes

    def link_bytes(self, node) -> int:
        return 0

    def ccl_payload(self, node) -> tuple[str, int]:
        return "local", 0
