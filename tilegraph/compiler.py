"""The compiler driver: `compile(graph, target)` runs the one list of passes, PASSES, and returns a Program.

    verify -> fuse -> shard -> plan_memory -> schedule -> place -> cost

Each pass is a small function of the Compilation (the graph so far, the target, what earlier passes decided);
passes that do not apply to a target return at once (shard without a mesh, cost without a device). `tilegraph
lower`, the trainer and the tests all compile through here, so the Program a test runs is the one a user gets.

- verify: well-formed SSA with consistent types (graph/passes/verify.py).
- fuse: rewrites a fusable SwiGLU gate into the swiglu kernel op, and in a training graph its backward into
  swiglu_bwd, which recomputes the gate (graph/passes/fuse.py).
- shard: the SPMD graph on the target's mesh, with explicit collectives (graph/passes/shard.py).
- plan_memory: on a mesh, per-device DRAM and the memory-aware order (the lower peak of the stable order and a
  greedy one); on the host, the stable topological order (dead nodes dropped), the in-place updates and the
  buffers (graph/passes/plan_memory.py: one allocator for both).
- schedule: the graph's nodes in the planned order (graph/passes/schedule.py).
- place: each step's implementation (`Step.impl`: kernel:<op>, ttnn:<op>, numpy, reference, collective) and the
  kernel ops' device options (graph/passes/place.py); backends run what it wrote.
- cost: on a mesh, the time of every step: the calibrated model (graph/passes/cost_model.py) when the target has
  a PerfConfig (what `tilegraph lower` uses), else the plain roofline (graph/passes/cost.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tilegraph.errors import DeviceError
from tilegraph.graph.ir import Graph, Node, Value
from tilegraph.graph.meshes import Mesh, get_mesh
from tilegraph.graph.passes.cost import CostReport, estimate
from tilegraph.graph.passes.cost_model import estimate as calibrated_estimate
from tilegraph.graph.passes.fuse import fuse
from tilegraph.graph.passes.place import BACKEND_PLACEMENT, place
from tilegraph.graph.passes.plan_memory import (
    Allocation,
    MemoryPlan,
    Precision,
    in_place_updates,
    plan_host_buffers,
    plan_memory,
)
from tilegraph.graph.passes.schedule import live_nodes, schedule, topological_order
from tilegraph.graph.passes.shard import shard
from tilegraph.graph.passes.verify import verify
from tilegraph.graph.perf import PerfConfig
from tilegraph.kernels.registry import DeviceOptions
from tilegraph.runtime.program import Buffer, Program, Step


@dataclass(frozen=True)
class Target:
    """What the Program is compiled for.

    backend: where it runs -- "numpy" (host), "emu" (kernel ops on the kernel emulator, the rest on the host),
    "mesh" (a sharded graph on the virtual mesh of numpy devices) or "ttnn" (a Tenstorrent device: lowered and
    costed by `tilegraph lower`, not run here). mesh: shard onto this mesh first (the `mesh` and `ttnn` backends).
    device: the kernel ops' data format, core grid and builder knobs (default on "emu": a 2x2 grid, small because
    every emulated core is three host threads; elsewhere DeviceOptions()).
    """

    backend: str = "numpy"
    mesh: Mesh | str | None = None
    tp_axis: int | None = None
    residual: str = "all_reduce"
    precision: Precision = field(default_factory=Precision)
    fidelity: str = "hifi2"
    device: DeviceOptions | None = None
    layout: str = "tp-dp"  # graph/passes/shard.py LAYOUTS: "tp-dp", or "2d" tensor parallel on both mesh axes
    perf: PerfConfig | None = None  # formats / fidelity per group: cost with the calibrated model (cost_model.py)
    # fuse SwiGLU gates into our swiglu kernel op; `tilegraph lower` turns it off to predict tt-metal's Llama, which
    # composes SwiGLU (two matmuls, mul with SiLU) and, in the 2-D layout, all_reduces the matmuls' partial sums
    # before the nonlinearity (a fused op there would need whole weights)
    fuse_swiglu: bool = True

    def __post_init__(self):
        if self.backend not in BACKEND_PLACEMENT:
            raise DeviceError(f"unknown backend {self.backend!r}; choose one of {', '.join(BACKEND_PLACEMENT)}")
        if isinstance(self.mesh, str):
            object.__setattr__(self, "mesh", get_mesh(self.mesh))
        if self.device is None:
            object.__setattr__(self, "device", DeviceOptions(grid=(2, 2)) if self.backend == "emu" else DeviceOptions())

    @property
    def on_host(self) -> bool:
        """Whether the Program runs on planned host buffers: numpy and emu on one device. Sharded Programs (and
        every ttnn Program) keep per-device arrays instead (runtime/mesh_backend.py MeshExecutor)."""
        return self.backend in ("numpy", "emu") and self.mesh is None


@dataclass
class Compilation:
    """What the passes share: the graph so far and the decisions taken."""

    graph: Graph
    target: Target
    plan: MemoryPlan | None = None  # device memory (on a mesh)
    aliases: dict[Value, Value] = field(default_factory=dict)  # host: update results written into their state
    host_buffers: Allocation | None = None
    order: list[Node] | None = None
    impls: list[str] = field(default_factory=list)  # Step.impl per scheduled node
    cost: CostReport | None = None


def _verify(c: Compilation) -> None:
    c.graph = verify(c.graph)


def _fuse(c: Compilation) -> None:
    if c.target.fuse_swiglu:
        # Training graphs fuse the gate's backward where kernels run it (emu, a device); on the numpy backend
        # keeping the gate's a and b is cheaper than recomputing them (two GEMMs per layer).
        c.graph = fuse(c.graph, backward=c.target.backend != "numpy")


def _shard(c: Compilation) -> None:
    if c.target.mesh is not None:
        c.graph = shard(c.graph, c.target.mesh, tp_axis=c.target.tp_axis, residual=c.target.residual,
                        layout=c.target.layout)  # fmt: skip


def _plan_memory(c: Compilation) -> None:
    g = c.graph
    if c.target.mesh is not None:
        c.plan = plan_memory(g, c.target.mesh.chip.dram_bytes, c.target.precision)
        c.order = c.plan.order
    else:
        c.order = topological_order(g, live_nodes(g))
    if c.target.on_host:
        ordered = g.copy(c.order)
        c.aliases = in_place_updates(ordered)
        c.host_buffers = plan_host_buffers(ordered, c.aliases)


def _schedule(c: Compilation) -> None:
    c.graph = schedule(c.graph, c.order)


def _place(c: Compilation) -> None:
    c.impls = place(c.graph, c.target.backend)


def _cost(c: Compilation) -> None:
    if c.target.mesh is None:
        return
    if c.target.perf is not None:  # formats per tensor group, calibrated on Tenstorrent's published measurements
        c.cost = calibrated_estimate(c.graph, c.target.mesh, c.target.perf, c.impls)
    else:
        c.cost = estimate(c.graph, c.target.mesh, c.plan, c.target.precision, c.target.fidelity, c.impls)


# The pipeline, in order.
PASSES: tuple[tuple[str, Callable[[Compilation], None]], ...] = (
    ("verify", _verify),
    ("fuse", _fuse),
    ("shard", _shard),
    ("plan_memory", _plan_memory),
    ("schedule", _schedule),
    ("place", _place),
    ("cost", _cost),
)


def compile(graph: Graph, target: Target | None = None) -> Program:
    """Run PASSES over `graph` for `target` (default: the numpy backend) and return the Program."""
    c = Compilation(graph, target or Target())
    for _, run_pass in PASSES:
        run_pass(c)
    return _program(c)


def _program(c: Compilation) -> Program:
    from tilegraph.ops import get_op

    g = c.graph
    alloc = c.host_buffers
    where = alloc.where if alloc is not None else {}
    buffers = [Buffer(i, pool, size) for i, (pool, size) in enumerate(zip(alloc.pools, alloc.sizes))] if alloc else []
    steps = []
    for i, (node, impl) in enumerate(zip(g.nodes, c.impls)):
        op = get_op(node.op)
        steps.append(Step(
            index=i, op=node.op,
            inputs=tuple(v.name for v in node.inputs), outputs=tuple(v.name for v in node.outputs),
            input_shapes=tuple(v.shape for v in node.inputs), output_shapes=tuple(v.shape for v in node.outputs),
            output_dtypes=tuple(v.dtype for v in node.outputs), attrs=node.attrs,
            impl=impl, buffers=tuple(where.get(v, -1) for v in node.outputs),
            flops=int(op.flops(node)), bytes_moved=int(op.bytes_moved(node)), node=node,
        ))  # fmt: skip
    return Program(
        g, steps, buffers, {v.name: b for v, b in where.items()}, {d.name: s.name for d, s in c.aliases.items()},
        target=c.target, plan=c.plan, cost=c.cost,
    )
