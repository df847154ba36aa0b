"""add_bias(x[..., N], b[N]) -> x + b (the bias of a linear layer, or a LayerNorm's beta),  and
bias_grad(dy[..., N]) -> sum of dy over its leading dims (the bias gradient)."""

from __future__ import annotations

import numpy as np
from tilegraph.ops._util import expect_arity, expect_float
from tilegraph.ops.base import Op, TensorType, register
from tilegraph.ops.parallel import as_rows, parallel_rows
from tilegraph.ops.placement import P, Partial, R, Shard, last_dim, no_partial

from tilegraph.errors import ShapeError


def add_bias_reference(x: np.ndarray, b: np.ndarray) -> np.ndarray:
    return x + b.astype(x.dtype, copy=False)


def bias_grad_reference(dy: np.ndarray) -> np.ndarray:
    return dy.reshape(-1, dy.shape[-1]).sum(axis=0)


@register
class AddBias(Op):
    name = "add_bias"
    attrs = {}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): a feature split of x splits b alike; a row split passes
        with b replicated. A partial sum is reduced first (adding b on every device would add it N times)."""
        x = no_partial(placements[0])
        if isinstance(x, Shard) and x.dim == last_dim(node.inputs[0]):
            return [x, Shard(0, x.order)], [x]
        return [x, R], [x]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["x", "b"])
        x, b = inputs
        expect_float(self.name, "x", x)
        if len(x.shape) < 1 or b.shape != (x.shape[-1],) or b.dtype != x.dtype:
            raise ShapeError(
                f"op 'add_bias': b {b} must be {x.dtype}[{x.shape[-1] if x.shape else '?'}] for x {x} "
                f"(one bias per output feature)"
            )
        return [x]

    def reference(self, inputs, attrs):
        return [add_bias_reference(*inputs)]

    def numpy_into(self, inputs, outputs, attrs):
        x, b, y = as_rows(inputs[0]), inputs[1], as_rows(outputs[0])

        def rows(r0, r1, _):
            np.add(x[r0:r1], b, out=y[r0:r1])

        parallel_rows(x.shape[0], x.shape[1], rows)

    def backward(self, g, node, grads):
        (dy,) = grads
        if dy is None:
            return [None, None]
        return [dy, g.call("bias_grad", dy)]

    def flops(self, node):
        return node.outputs[0].type.numel


@register
class BiasGrad(Op):
    name = "bias_grad"
    attrs = {}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): a sum over rows, so split rows (or a partial dy) give a
        partial sum and a feature split gives a split bias."""
        dy = placements[0]
        if isinstance(dy, Partial):
            return [dy], [P]
        if isinstance(dy, Shard):
            if dy.dim == last_dim(node.inputs[0]):
                return [dy], [Shard(0, dy.order)]
            return [dy], [P]
        return [R], [R]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["dy"])
        (dy,) = inputs
        expect_float(self.name, "dy", dy)
        if len(dy.shape) < 1:
            raise ShapeError(f"op 'bias_grad': dy {dy} must have a feature dim")
        return [TensorType((dy.shape[-1],), dy.dtype)]

    def reference(self, inputs, attrs):
        return [bias_grad_reference(inputs[0])]

    def numpy_into(self, inputs, outputs, attrs):
        dy = as_rows(inputs[0])
        partials = {}

        def rows(r0, r1, _):
            partials[r0] = dy[r0:r1].sum(axis=0)

        parallel_rows(dy.shape[0], dy.shape[1], rows)
        out = outputs[0]
        out.fill(0)
        for r0 in sorted(partials):  # fixed order: deterministic whatever the thread timing
            out += partials[r0]

    def flops(self, node):
        return node.inputs[0].type.numel
