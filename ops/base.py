"""The op interface. Each op is defined once, in one module of ops/, as a subclass of `Op`.

An op states in one place: its attributes and shape/dtype inference, its numpy reference (float32 and float64),
its backward rule as graph ops, its cost (FLOPs and bytes), how it shards, and its device implementations.
`REGISTRY` maps op names to the single instance of each definition.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from tilegraph.errors import ShapeError
from tilegraph.tiles import DTYPE_BYTES

if TYPE_CHECKING:  # pragma: no cover
    from tilegraph.graph.ir import Graph, Node, Value



@dataclass(frozen=True)
class TensorType:
    """Shape and element type of a value (full, unsharded shape)."""

    shape: tuple[int, ...]
    dtype: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))
        if self.dtype not in DTYPE_BYTES:
            raise ShapeError(f"unknown dtype {self.dtype!r}; use one of {sorted(DTYPE_BYTES)}")

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return int(round(self.numel * DTYPE_BYTES[self.dtype]))

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(map(str, self.shape))}]"


class Op:
    """Base class of every op definition. Subclasses set `name` and override what applies."""

    name: ClassVar[str] = ""
    # Names of attributes the op accepts, with defaults (attrs not listed are rejected by Graph.call).
    attrs: ClassVar[Mapping[str, object]] = {}

    def infer(self, inputs: Sequence[TensorType], attrs: Mapping[str, object]) -> list[TensorType]:
        """Output types from input types; raise ShapeError naming the op and the fix."""
        raise NotImplementedError(self.name)

    def reference(self, inputs: Sequence[np.ndarray], attrs: Mapping[str, object]) -> list[np.ndarray]:
        """Ground-truth numpy implementation; computes in the inputs' float dtype (float32 or float64)."""
        raise NotImplementedError(self.name)

    def backward(self, g: Graph, node: Node, grads: Sequence[Value | None]) -> list[Value | None]:
        """Gradients w.r.t. node.inputs, emitted as graph ops into `g` (None where not differentiable)."""
        raise NotImplementedError(f"op {self.name!r} has no backward rule")

    def flops(self, node: Node) -> int:
        """Floating-point operations of one execution (a multiply-add counts 2)."""
        return 0

    def bytes_moved(self, node: Node) -> int:
        """Bytes read and written by one execution, assuming each operand is touched once."""
        return sum(v.type.nbytes for v in node.inputs) + sum(v.type.nbytes for v in node.outputs)

    # -- optional hooks: None where an op has none (an op module defines them as methods) ---------------------------
    # numpy_into(inputs, outputs, attrs): float32 fast path of the numpy backend, writing into preallocated outputs.
    numpy_into: ClassVar[Callable | None] = None
    # shard(node, placements, axis) -> (input placements, output placements) on one mesh axis (ops/placement.py).
    shard: ClassVar[Callable | None] = None
    # collective(arrays, attrs) -> per-device results of a collective over one group of devices (mesh backend).
    collective: ClassVar[Callable | None] = None
    # True when the op writes each output only after its last read of the inputs, so an update result may be
    # written straight into the state array it replaces (graph.passes.plan_memory.in_place_updates).
    outputs_may_alias_inputs: ClassVar[bool] = False


REGISTRY: dict[str, Op] = {}


def register(cls: type[Op]) -> type[Op]:
    """Class decorator: adds the single instance of an op definition to REGISTRY."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} must set `name`")
    if cls.name in REGISTRY:
        raise TypeError(f"op {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def get_op(name: str) -> Op:
    try:
        return REGISTRY[name]
    except KeyError:
        raise ShapeError(f"unknown op {name!r}; registered ops: {', '.join(sorted(REGISTRY))}") from None
