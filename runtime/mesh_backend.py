"""The virtual mesh: runs a sharded (SPMD) graph with one numpy array per device and real collective semantics.

It exists to prove that a sharded graph computes what the unsharded one does: global inputs are cut into device
shards by their `Value.sharding`, every compute node runs once per device on that device's arrays (the op's numpy
reference, in the arrays' dtype: float64 graphs give exact comparisons), every collective runs once per group of
devices along its `cluster_axis` (`Op.collective`), and outputs / updated state are reassembled into global arrays
(split dims concatenated, partial sums summed). It is a test bench, not the distributed runtime (that is ttnn).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from tilegraph.graph.ir import Graph, Value
from tilegraph.graph.passes.shard import CCL_OPS, Partial, Replicate, Shard
from tilegraph.ops import get_op

from tilegraph.errors import DeviceError, ShapeError


def _blocks_for(order, n: int, k: int) -> list[int]:
    per = len(order) // n
    return list(order[k * per : (k + 1) * per])


def split_axis(arr: np.ndarray, p, n: int) -> list[np.ndarray]:
    """The n device pieces of `arr` along one mesh axis with placement p."""
    if isinstance(p, Replicate) or n == 1:
        return [arr] * n
    if isinstance(p, Shard):
        if p.order is None:
            return [np.ascontiguousarray(x) for x in np.split(arr, n, axis=p.dim)]
        blocks = np.split(arr, len(p.order), axis=p.dim)
        return [np.concatenate([blocks[b] for b in _blocks_for(p.order, n, k)], axis=p.dim) for k in range(n)]
    raise ShapeError(
        f"cannot distribute a global array with placement {p} (a partial sum has no single source)"
    )


def join_axis(pieces: list[np.ndarray], p) -> np.ndarray:
    """Inverse of split_axis: the global array from the n device pieces along one mesh axis."""
    n = len(pieces)
    if isinstance(p, Replicate) or n == 1:
        return pieces[0]
    if isinstance(p, Shard):
        if p.order is None:
            return np.concatenate(pieces, axis=p.dim)
        per = len(p.order) // n
        blocks: list = [None] * len(p.order)
        for k, piece in enumerate(pieces):
            for j, b in enumerate(np.split(piece, per, axis=p.dim)):
                blocks[p.order[k * per + j]] = b
        return np.concatenate(blocks, axis=p.dim)
    if isinstance(p, Partial) and p.reduce in ("sum", "mean"):
        total = np.sum(np.stack(pieces), axis=0)
        return total / n if p.reduce == "mean" else total
    raise ShapeError(f"cannot assemble placement {p}")


class MeshExecutor:
    """Executes a graph from graph.passes.shard on a virtual mesh of len(mesh) numpy 'devices'."""

    def __init__(self, graph: Graph):
        mesh = graph.mesh  # set by the shard pass; Graph.copy keeps it
        if mesh is None:
            raise DeviceError(f"graph {graph.name!r} is not sharded; compile it with "
                              f"Target(backend=\"mesh\", mesh=...) or run graph.passes.shard.shard(graph, mesh) first")
        self.graph, self.mesh = graph, mesh
        self.shape = mesh.shape
        self.devices = [(i, j) for i in range(self.shape[0]) for j in range(self.shape[1])]

    # -- distribution --------------------------------------------------------------------------------------------
    def scatter(self, v: Value, arr: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
        p0, p1 = v.sharding.placements
        out = {}
        for i, row in enumerate(split_axis(arr, p0, self.shape[0])):
            for j, piece in enumerate(split_axis(row, p1, self.shape[1])):
                out[(i, j)] = piece
        return out

    def gather(self, v: Value, per_device: Mapping[tuple[int, int], np.ndarray]) -> np.ndarray:
        p0, p1 = v.sharding.placements
        rows = [
            join_axis([per_device[(i, j)] for j in range(self.shape[1])], p1) for i in range(self.shape[0])
        ]
        return np.array(join_axis(rows, p0))

    def _groups(self, axis: int) -> list[list[tuple[int, int]]]:
        """Device coordinates of each collective group along `axis`, ordered by their coordinate on it."""
        other = 1 - axis
        return [
            sorted((d for d in self.devices if d[other] == c), key=lambda d: d[axis])
            for c in range(self.shape[other])
        ]

    # -- execution -------------------------------------------------------------------------------------------------
    def run(self, state: dict[str, np.ndarray], feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Global params/state from `state` (updated in place with the reassembled new values), data from `feeds`."""
        vals: dict[Value, dict[tuple[int, int], np.ndarray]] = {}
        for v in self.graph.inputs:
            source = feeds if v.role == "input" else state
            if v.name not in source:
                raise ShapeError(f"mesh program {self.graph.name!r} needs {v.role} {v.name!r}")
            arr = np.asarray(source[v.name], dtype=v.dtype)
            if arr.shape != v.sharding.global_shape:
                raise ShapeError(f"{v.name!r} has shape {arr.shape}; expected {v.sharding.global_shape}")
            vals[v] = self.scatter(v, arr)
        for node in self.graph.nodes:
            op = get_op(node.op)
            if node.op in CCL_OPS:
                (x,) = node.inputs
                out = {}
                for group in self._groups(int(node.attrs["cluster_axis"])):
                    for d, res in zip(group, op.collective([vals[x][d] for d in group], node.attrs)):
                        out[d] = res
                vals[node.outputs[0]] = out
                continue
            results = {d: op.reference([vals[v][d] for v in node.inputs], node.attrs) for d in self.devices}
            for k, v in enumerate(node.outputs):
                vals[v] = {d: np.asarray(results[d][k], dtype=v.dtype) for d in self.devices}
                for d in self.devices:
                    if vals[v][d].shape != v.shape:
                        raise ShapeError(
                            f"{node.op} on device {d} gave {vals[v][d].shape} for %{v.name}: {v.shape}"
                        )
        outputs = {key: self.gather(v, vals[v]) for key, v in self.graph.outputs.items()}
        for src, dst in self.graph.updates.items():
            state[src.name][...] = self.gather(dst, vals[dst])
        return outputs


class Executor:
    """The `mesh` backend of runtime.Program: `compile(shard(graph, mesh)).run(state, feeds, backend="mesh")` runs
    the Program's steps, in its order, on the virtual mesh."""

    def __init__(self, program):
        self.mesh_executor = MeshExecutor(program.graph)

    def run(self, state: dict[str, np.ndarray], feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.mesh_executor.run(state, feeds)


def run_sharded(
    graph: Graph, state: dict[str, np.ndarray], feeds: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """One execution of a sharded graph on its virtual mesh (see MeshExecutor.run)."""
    return MeshExecutor(graph).run(state, feeds)
