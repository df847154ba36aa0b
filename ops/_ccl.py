"""Shared checks of the collective (CCL) ops: all_gather, reduce_scatter, all_reduce, mesh_partition.

Collectives are SPMD ops of a sharded graph: every shape is the per-device (local) shape, `cluster_axis` names the
mesh axis whose devices take part, and `devices` is how many devices lie along it (shape inference needs it).
A collective's meaning involves every device of its group, so besides `reference` (which can only describe a group
of one) each CCL op has `collective(arrays, attrs)`: the arrays of one group, ordered by their coordinate along
`cluster_axis`, in; one array per device out. The mesh backend (runtime/mesh_backend.py) calls that.
"""

from __future__ import annotations

from collections.abc import Mapping

from tilegraph.ops._util import expect_float
from tilegraph.ops.base import TensorType

from tilegraph.errors import ShapeError

CCL_ATTRS = {"cluster_axis": 0, "devices": 1}


def check_common(op: str, inputs, attrs: Mapping[str, object]) -> tuple[TensorType, int]:
    if len(inputs) != 1:
        raise ShapeError(f"op {op!r} takes one input (x) but got {len(inputs)}")
    (x,) = inputs
    expect_float(op, "x", x)
    axis, n = attrs["cluster_axis"], attrs["devices"]
    if isinstance(axis, bool) or axis not in (0, 1):
        raise ShapeError(f"op {op!r}: cluster_axis={axis!r} must be 0 or 1 (a mesh axis)")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ShapeError(f"op {op!r}: devices={n!r} must be a positive int (devices along cluster_axis)")
    return x, n


def check_dim(op: str, key: str, x: TensorType, attrs) -> int:
    d = attrs[key]
    rank = len(x.shape)
    if isinstance(d, bool) or not isinstance(d, int) or not -rank <= d < rank:
        raise ShapeError(f"op {op!r}: {key}={d!r} is not a dim of x {list(x.shape)}")
    return d % rank


def split_type(op: str, inputs, attrs: Mapping[str, object]) -> TensorType:
    """The per-device type after splitting x's `dim` over the group (reduce_scatter, mesh_partition)."""
    x, n = check_common(op, inputs, attrs)
    d = check_dim(op, "dim", x, attrs)
    if x.shape[d] % n:
        raise ShapeError(
            f"op {op!r}: dim {d} of x {list(x.shape)} has {x.shape[d]} elements, not divisible by "
            f"devices={n}; pad it or split another dim"
        )
    shape = list(x.shape)
    shape[d] //= n
    return TensorType(tuple(shape), x.dtype)


def single_device(op: str, attrs) -> None:
    if attrs["devices"] != 1:
        raise ShapeError(
            f"op {op!r} over {attrs['devices']} devices needs every device's input; run it on the mesh backend "
            f"(tilegraph.runtime.mesh_backend), or call {op}.collective(arrays, attrs)"
        )


def ring_link_bytes(factor: float, n: int, nbytes: int) -> int:
    """Bytes each device sends over its links in a ring collective: factor * (N-1)/N * nbytes."""
    return int(factor * (n - 1) * nbytes // n) if n > 1 else 0
