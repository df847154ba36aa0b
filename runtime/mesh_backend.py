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
    """Executes a graph from graph.passes.shard on a virtual mesh of len(mesh) numpy 'devices' (an unsharded graph
    on one device); `nodes` orders the nodes (default: the graph's). Subclasses change how a node runs (`compute`,
    `communicate`) and how inputs are cut (`scatter`); the dataflow is this class's."""

    def __init__(self, graph: Graph, nodes=None):
        self.graph, self.mesh = graph, graph.mesh  # set by the shard pass; Graph.copy keeps it
        self.shape = tuple(self.mesh.shape) if self.mesh is not None else (1, 1)
        self.devices = [(i, j) for i in range(self.shape[0]) for j in range(self.shape[1])]
        self.nodes = list(nodes) if nodes is not None else list(graph.nodes)

    # -- distribution --------------------------------------------------------------------------------------------
    def scatter(self, v: Value, arr: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
        if v.sharding is None:
            return {(0, 0): arr}
        p0, p1 = v.sharding.placements
        out = {}
        for i, row in enumerate(split_axis(arr, p0, self.shape[0])):
            for j, piece in enumerate(split_axis(row, p1, self.shape[1])):
                out[(i, j)] = piece
        return out

    def gather(self, v: Value, per_device: Mapping[tuple[int, int], np.ndarray]) -> np.ndarray:
        if v.sharding is None:
            return np.array(per_device[(0, 0)])
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
            expected = v.sharding.global_shape if v.sharding is not None else v.shape
            if arr.shape != expected:
                raise ShapeError(f"{v.name!r} has shape {arr.shape}; expected {expected}")
            vals[v] = self.scatter(v, arr)
        for node in self.nodes:
            if node.op in CCL_OPS:
                vals[node.outputs[0]] = self.communicate(node, vals[node.inputs[0]])
                continue
            results = self.compute(node, [[vals[v][d] for v in node.inputs] for d in self.devices])
            for k, v in enumerate(node.outputs):
                vals[v] = {d: np.asarray(res[k], dtype=v.dtype) for d, res in zip(self.devices, results)}
                for d in self.devices:
                    if vals[v][d].shape != v.shape:
                        raise ShapeError(
                            f"{node.op} on device {d} gave {vals[v][d].shape} for %{v.name}: {v.shape}"
                        )
        outputs = {key: self.gather(v, vals[v]) for key, v in self.graph.outputs.items()}
        for src, dst in self.graph.updates.items():
            state[src.name][...] = self.gather(dst, vals[dst])
        return outputs

    def compute(self, node, inputs: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
        """A compute node on every device (inputs and outputs in self.devices order): the op's numpy reference."""
        op = get_op(node.op)
        return [op.reference(device_inputs, node.attrs) for device_inputs in inputs]

    def communicate(self, node, x: Mapping[tuple[int, int], np.ndarray]) -> dict[tuple[int, int], np.ndarray]:
        """A collective node: the op's collective once per group of devices along its cluster_axis."""
        op = get_op(node.op)
        out = {}
        for group in self._groups(int(node.attrs["cluster_axis"])):
            for d, res in zip(group, op.collective([x[d] for d in group], node.attrs)):
                out[d] = res
        return out


class SpmdExecutor(MeshExecutor):
    """A compiled Program on its mesh with each step as the place pass decided (Step.impl): `kernel:<op>` steps run
    our kernels SPMD (one ProgramDescription, each device's own shard) on `kernel_backend`; the other steps and the
    collectives as on the virtual mesh (numpy, per device / per group). The emu backend runs sharded Programs with
    it; the ttnn backend (runtime/ttnn_backend.py) subclasses it to put built-ins and collectives on ttnn."""

    kernel_backend = "emu"

    def __init__(self, program):
        super().__init__(program.graph, [s.node for s in program.steps])
        self.program = program
        self.impls = {id(s.node): s.impl for s in program.steps}
        self.kernel_steps = [s.op for s in program.steps if s.impl.startswith("kernel:")]
        self.numpy_steps = [s.op for s in program.steps if not s.impl.startswith("kernel:")]

    def fallback_steps(self) -> list[str]:
        """Ops of the steps that do not run as our kernels."""
        return list(self.numpy_steps)

    def compute(self, node, inputs):
        impl = self.impls[id(node)]
        if impl.startswith("kernel:"):
            return self.run_kernel(impl.removeprefix("kernel:"), inputs, node.attrs)
        return super().compute(node, inputs)

    def run_kernel(self, op: str, inputs: list[list[np.ndarray]], attrs) -> list[list[np.ndarray]]:
        from tilegraph.runtime.kernel_ops import run_kernel_op_spmd

        return run_kernel_op_spmd(op, inputs, attrs, self.kernel_backend, self.program.device)


def _sharded(graph: Graph) -> Graph:
    if graph.mesh is None:
        raise DeviceError(f"graph {graph.name!r} is not sharded; compile it with "
                          f"Target(backend=\"mesh\", mesh=...) or run graph.passes.shard.shard(graph, mesh) first")
    return graph


class Executor:
    """The `mesh` backend of runtime.Program: `compile(shard(graph, mesh)).run(state, feeds, backend="mesh")` runs
    the Program's steps, in its order, on the virtual mesh."""

    def __init__(self, program):
        self.mesh_executor = MeshExecutor(_sharded(program.graph))

    def run(self, state: dict[str, np.ndarray], feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.mesh_executor.run(state, feeds)


def run_sharded(
    graph: Graph, state: dict[str, np.ndarray], feeds: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """One execution of a sharded graph on its virtual mesh (see MeshExecutor.run)."""
    return MeshExecutor(_sharded(graph)).run(state, feeds)
