"""Small elementwise ops: add, fill, silu_mul (the SwiGLU gate) and silu_mul_bwd.

silu(a) = a * sigmoid(a);  d/da [silu(a) * b] = b * sigmoid(a) * (1 + a * (1 - sigmoid(a))).
"""

from __future__ import annotations

import numpy as np
from tilegraph.ops import cpu_kernels
from tilegraph.ops._util import DTYPE_NAMES, expect_arity, expect_float, expect_same
from tilegraph.ops.base import Op, TensorType, register
from tilegraph.ops.cpu_kernels import contiguous
from tilegraph.ops.parallel import as_rows, parallel_rows
from tilegraph.ops.placement import R, elementwise

from tilegraph.errors import ShapeError


def sigmoid(a: np.ndarray) -> np.ndarray:
    # 1/(1+exp(-a)) overflows harmlessly to 0 for very negative a (exp -> inf); silence that warning.
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-a))


def silu_mul_reference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a * sigmoid(a) * b


def silu_mul_bwd_reference(a: np.ndarray, b: np.ndarray, dy: np.ndarray):
    s = sigmoid(a)
    da = dy * b * s * (1.0 + a * (1.0 - s))
    db = dy * a * s
    return da, db


@register
class Add(Op):
    name = "add"
    attrs = {}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): linear, so partial sums pass; operands meet in one placement."""
        return elementwise(node, placements, axis, linear=True)

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["a", "b"])
        expect_same(self.name, "a", inputs[0], "b", inputs[1])
        return [inputs[0]]

    def reference(self, inputs, attrs):
        return [inputs[0] + inputs[1]]

    def numpy_into(self, inputs, outputs, attrs):
        a, b, y = (as_rows(x) for x in (*inputs, outputs[0]))

        def rows(r0, r1, _):
            np.add(a[r0:r1], b[r0:r1], out=y[r0:r1])

        parallel_rows(a.shape[0], a.shape[1], rows)

    def backward(self, g, node, grads):
        (dy,) = grads
        return [dy, dy]

    def flops(self, node):
        return node.outputs[0].type.numel


@register
class Fill(Op):
    name = "fill"
    attrs = {"shape": (), "value": 0.0, "dtype": "float32"}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): a constant is replicated."""
        return [], [R]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, [])
        shape = attrs["shape"]
        if not isinstance(shape, (tuple, list)) or any(
            isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 0 for d in shape
        ):
            raise ShapeError(f"op 'fill': shape={shape!r} must be a tuple of non-negative ints")
        if attrs["dtype"] not in DTYPE_NAMES:
            raise ShapeError(f"op 'fill': dtype={attrs['dtype']!r} must be one of {', '.join(DTYPE_NAMES)}")
        return [TensorType(tuple(shape), attrs["dtype"])]

    def reference(self, inputs, attrs):
        return [np.full(tuple(attrs["shape"]), attrs["value"], dtype=attrs["dtype"])]

    def numpy_into(self, inputs, outputs, attrs):
        outputs[0][...] = attrs["value"]

    def backward(self, g, node, grads):
        return []


def _run_same_shape_kernel(op: str, arrays: dict[str, np.ndarray]) -> None:
    """The CPU kernel named `op` over operands and results of one shape (kernel(pointers..., count)), their rows
    split over the workers."""
    views = {name: as_rows(a) for name, a in arrays.items()}
    contiguous(op, **views)
    first = next(iter(views.values()))
    kernel = cpu_kernels.kernel(op, first.dtype)
    w = first.shape[1]
    base, row = [a.ctypes.data for a in views.values()], w * first.itemsize  # addresses, not views, per piece

    def rows(r0, r1, _):
        kernel(*(p + r0 * row for p in base), (r1 - r0) * w)

    parallel_rows(first.shape[0], w, rows)


def _check_pair(op, a, b):
    expect_float(op, "a", a)
    expect_same(op, "a", a, "b", b)


@register
class SiluMul(Op):
    name = "silu_mul"
    attrs = {}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): elementwise, not linear: one placement, no partial sums."""
        return elementwise(node, placements, axis, linear=False)

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["a", "b"])
        _check_pair(self.name, *inputs)
        return [inputs[0]]

    def reference(self, inputs, attrs):
        return [silu_mul_reference(*inputs)]

    def numpy_into(self, inputs, outputs, attrs):
        _run_same_shape_kernel(self.name, dict(zip(("a", "b", "y"), (*inputs, *outputs))))

    def backward(self, g, node, grads):
        (dy,) = grads
        if dy is None:
            return [None, None]
        a, b = node.inputs
        da, db = g.call("silu_mul_bwd", a, b, dy)
        return [da, db]

    def flops(self, node):
        return 5 * node.outputs[0].type.numel


@register
class SiluMulBwd(Op):
    name = "silu_mul_bwd"
    attrs = {}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): elementwise, not linear: one placement, no partial sums."""
        return elementwise(node, placements, axis, linear=False)

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["a", "b", "dy"])
        a, b, dy = inputs
        _check_pair(self.name, a, b)
        expect_same(self.name, "a", a, "dy", dy)
        return [a, b]

    def reference(self, inputs, attrs):
        return list(silu_mul_bwd_reference(*inputs))

    def numpy_into(self, inputs, outputs, attrs):
        _run_same_shape_kernel(self.name, dict(zip(("a", "b", "dy", "da", "db"), (*inputs, *outputs))))

    def flops(self, node):
        return 10 * node.outputs[0].type.numel
