"""Activations of the non-gated and GELU-gated MLPs: gelu, relu, mul and their backward ops.

gelu is the tanh approximation GPT-2 uses:  gelu(x) = 0.5 x (1 + tanh(c (x + 0.044715 x^3))),  c = sqrt(2/pi);
    d gelu/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 * 0.044715 x^2),  t = tanh(c (x + 0.044715 x^3)).
relu(x) = max(x, 0), d relu/dx = [x > 0].  mul(a, b) = a * b (the gate of GeGLU: gelu(a) * b).
"""

from __future__ import annotations

import math

import numpy as np
from tilegraph.ops._util import expect_arity, expect_float, expect_same
from tilegraph.ops.base import Op, register
from tilegraph.ops.elementwise import _run_same_shape_kernel
from tilegraph.ops.parallel import as_rows, parallel_rows
from tilegraph.ops.placement import elementwise

_C = math.sqrt(2.0 / math.pi)
_K = 0.044715


def gelu_reference(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(_C * (x + _K * x * x * x)))


def gelu_bwd_reference(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    t = np.tanh(_C * (x + _K * x * x * x))
    return dy * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * _C * (1.0 + 3.0 * _K * x * x))


def relu_reference(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0)


def relu_bwd_reference(x: np.ndarray, dy: np.ndarray) -> np.ndarray:
    return np.where(x > 0, dy, 0).astype(dy.dtype, copy=False)


def _unary_infer(op, inputs):
    expect_arity(op, inputs, ["x"])
    expect_float(op, "x", inputs[0])
    return [inputs[0]]


def _unary_bwd_infer(op, inputs):
    expect_arity(op, inputs, ["x", "dy"])
    expect_float(op, "x", inputs[0])
    expect_same(op, "x", inputs[0], "dy", inputs[1])
    return [inputs[0]]


def _rows(arrays, fn):
    """fn(*row slices) over the rows of same-shape arrays, split over the workers."""
    views = [as_rows(a) for a in arrays]

    def body(r0, r1, _):
        fn(*(v[r0:r1] for v in views))

    parallel_rows(views[0].shape[0], views[0].shape[1], body)


class _Elementwise(Op):
    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): elementwise, not linear: one placement, no partial sums."""
        return elementwise(node, placements, axis, linear=False)


@register
class Gelu(_Elementwise):
    name = "gelu"
    attrs = {}

    def infer(self, inputs, attrs):
        return _unary_infer(self.name, inputs)

    def reference(self, inputs, attrs):
        return [gelu_reference(inputs[0])]

    def numpy_into(self, inputs, outputs, attrs):
        # One pass in C++ (kernels/cpu/gelu.cpp): numpy's tanh formula streams the array ~8 times.
        _run_same_shape_kernel("gelu", {"x": inputs[0], "y": outputs[0]})

    def backward(self, g, node, grads):
        (dy,) = grads
        return [None if dy is None else g.call("gelu_bwd", node.inputs[0], dy)]

    def flops(self, node):
        return 8 * node.outputs[0].type.numel


@register
class GeluBwd(_Elementwise):
    name = "gelu_bwd"
    attrs = {}

    def infer(self, inputs, attrs):
        return _unary_bwd_infer(self.name, inputs)

    def reference(self, inputs, attrs):
        return [gelu_bwd_reference(*inputs)]

    def numpy_into(self, inputs, outputs, attrs):
        _run_same_shape_kernel("gelu_bwd", {"x": inputs[0], "dy": inputs[1], "dx": outputs[0]})

    def flops(self, node):
        return 14 * node.outputs[0].type.numel


@register
class Relu(_Elementwise):
    name = "relu"
    attrs = {}

    def infer(self, inputs, attrs):
        return _unary_infer(self.name, inputs)

    def reference(self, inputs, attrs):
        return [relu_reference(inputs[0])]

    def numpy_into(self, inputs, outputs, attrs):
        _rows((inputs[0], outputs[0]), lambda x, y: np.maximum(x, 0, out=y))

    def backward(self, g, node, grads):
        (dy,) = grads
        return [None if dy is None else g.call("relu_bwd", node.inputs[0], dy)]

    def flops(self, node):
        return node.outputs[0].type.numel


@register
class ReluBwd(_Elementwise):
    name = "relu_bwd"
    attrs = {}

    def infer(self, inputs, attrs):
        return _unary_bwd_infer(self.name, inputs)

    def reference(self, inputs, attrs):
        return [relu_bwd_reference(*inputs)]

    def numpy_into(self, inputs, outputs, attrs):
        def body(x, dy, dx):
            np.multiply(dy, x > 0, out=dx)

        _rows((inputs[0], inputs[1], outputs[0]), body)

    def flops(self, node):
        return node.outputs[0].type.numel


@register
class Mul(_Elementwise):
    name = "mul"
    attrs = {}

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["a", "b"])
        expect_float(self.name, "a", inputs[0])
        expect_same(self.name, "a", inputs[0], "b", inputs[1])
        return [inputs[0]]

    def reference(self, inputs, attrs):
        return [inputs[0] * inputs[1]]

    def numpy_into(self, inputs, outputs, attrs):
        _rows((*inputs, outputs[0]), lambda a, b, y: np.multiply(a, b, out=y))

    def backward(self, g, node, grads):
        (dy,) = grads
        if dy is None:
            return [None, None]
        a, b = node.inputs
        return [g.call("mul", dy, b), g.call("mul", dy, a)]

    def flops(self, node):
        return node.outputs[0].type.numel
