"""Placements of a tensor on one mesh axis, and the helpers op sharding rules are written with.

An op says how it shards with a method `shard(node, placements, axis) -> (wanted, outputs)`: given the placements
of its inputs on one mesh axis (`axis` is a MeshAxis: size, role "tp"/"dp", residual mode), it returns the
placements it wants its inputs in (the shard pass, graph/passes/shard.py, inserts the collectives that convert
them) and the placements of its outputs. Shapes in `node` are global (unsharded).

  R            replicated: every device along the axis holds the whole tensor
  S(d)         sharded: device k of the axis holds the k-th of N equal pieces along dim d
               (S(d)* with an `order`: the dim is cut into blocks (heads) which are permuted first)
  P / P(mean)  partial: the tensor is the sum (or mean) over the axis of what the devices hold
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Replicate:
    def __str__(self) -> str:
        return "R"


@dataclass(frozen=True)
class Shard:
    dim: int
    order: tuple[int, ...] | None = None  # block permutation of the dim (strided heads); None = contiguous

    def __str__(self) -> str:
        return f"S({self.dim}){'*' if self.order else ''}"


@dataclass(frozen=True)
class Partial:
    reduce: str = "sum"  # "sum", "mean", or "l2" (local 2-norms whose 2-norm is the global one)

    def __str__(self) -> str:
        return "P" if self.reduce == "sum" else f"P({self.reduce})"


R = Replicate()
P = Partial()


@dataclass
class MeshAxis:
    index: int
    size: int
    role: str  # "tp" (tensor parallel) or "dp" (data parallel)
    residual: str = (
        "all_reduce"  # TP only: resolve row-parallel partial sums by "all_reduce" or "reduce_scatter"
    )


def last_dim(v) -> int:
    return len(v.shape) - 1


def no_partial(p):
    """Partial sums resolved (all_reduce) before use."""
    return R if isinstance(p, Partial) else p


def whole_rows(p, v):
    """For ops that need whole rows (norms, softmax): a split last dim is gathered, a partial reduced."""
    if isinstance(p, Partial) or (isinstance(p, Shard) and p.dim == last_dim(v)):
        return R
    return p


def common(node, placements: list, axis: MeshAxis, linear: bool):
    """One placement for all operands of an elementwise op (`linear`: partial sums may pass through)."""
    if all(p == placements[0] for p in placements) and (linear or not isinstance(placements[0], Partial)):
        return placements[0]
    shards = [p for p in placements if isinstance(p, Shard)]
    if shards and all(s.order is None for s in shards):
        return shards[0]
    if shards:
        return R
    v = node.inputs[0]
    # Replicated + partial: the residual add after a row-parallel matmul. reduce_scatter onto a hidden-split
    # residual when asked, else all_reduce.
    if (
        axis.role == "tp"
        and axis.residual == "reduce_scatter"
        and len(v.shape) >= 2
        and v.shape[-1] % axis.size == 0
    ):
        return Shard(last_dim(v))
    return R


def elementwise(node, placements: list, axis: MeshAxis, linear: bool):
    """An elementwise op's `shard` rule: every operand and result in the one placement `common` picks."""
    p = common(node, placements, axis, linear)
    return [p] * len(placements), [p] * len(node.outputs)
