"""cost: per-step time estimates of a sharded, scheduled graph on one mesh. A pure function.

Each compute step is a roofline on one chip: max(FLOPs / peak, DRAM bytes / DRAM bandwidth). Matmul-class ops
(linear, linear_wgrad, attention and its backward, swiglu) run on the matrix unit, whose peak depends on the math
fidelity (graph/meshes.py: LoFi / HiFi2 / HiFi4); the other ops are vector work whose FLOPs are a small fraction of
their bytes at that peak, so they are costed by their bytes only. Bytes are the device bytes of every operand read
and result written once (tile-padded, in the precision policy's dtypes; the embedding reads only its rows).
Each collective costs the fitted link formula of graph/meshes.py over its mesh axis; mesh_partition is a local copy.
The step time is the plain sum (no overlap of collectives with compute is assumed): an upper-bound-style estimate.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from tilegraph.graph.ir import Graph, Node
from tilegraph.graph.meshes import Mesh
from tilegraph.graph.passes.place import device_impl
from tilegraph.graph.passes.plan_memory import MemoryPlan, Precision, device_bytes
from tilegraph.ops import get_op

MATMUL_OPS = ("linear", "linear_wgrad", "attention", "attention_bwd", "swiglu", "swiglu_bwd", "moe_experts",
              "moe_experts_bwd")
COLLECTIVES = ("all_gather", "reduce_scatter", "all_reduce", "all_to_all")



@dataclass
class StepCost:
    index: int
    node: Node
    impl: str
    flops: int
    bytes: int  # DRAM bytes (compute steps) or link payload bytes (collectives)
    seconds: float
    bound: str  # "compute", "memory", "link", "local"


@dataclass
class CostReport:
    steps: list[StepCost]
    fidelity: str
    tokens_per_step: int

    @property
    def total_seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    @property
    def tokens_per_second(self) -> float:
        t = self.total_seconds
        return self.tokens_per_step / t if t > 0 else float("inf")

    def seconds_by(self, key: str) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for s in self.steps:
            out[s.bound if key == "bound" else s.node.op] += s.seconds
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    @property
    def bottleneck(self) -> str:
        total = self.total_seconds or 1.0
        bound, t = next(iter(self.seconds_by("bound").items()))
        op, t_op = next(iter(self.seconds_by("op").items()))
        what = {
            "compute": "matmul compute",
            "memory": "DRAM bandwidth",
            "link": "ethernet links (collectives)",
        }
        return (f"{what.get(bound, bound)} ({100 * t / total:.0f}% of the step); the costliest op is {op} "
                f"({100 * t_op / total:.0f}%)")  # fmt: skip


def _compute_bytes(node: Node, plan: MemoryPlan) -> int:
    if node.op == "embedding":  # only the looked-up rows of the table are read
        ids, out = node.inputs[1], node.outputs[0]
        return plan.bytes_of[ids] + 2 * plan.bytes_of[out]
    return sum(plan.bytes_of[v] for v in node.inputs) + sum(plan.bytes_of[v] for v in node.outputs)


def comm_payload(node: Node, plan: MemoryPlan, precision: Precision, padded: bool = True) -> int:
    """The tensor bytes a collective's cost formula takes: the per-device tensor of an all_reduce, the whole
    (gathered / un-scattered) tensor of an all_gather / reduce_scatter."""
    v = node.outputs[0] if node.op == "all_gather" else node.inputs[0]
    fill = float(node.attrs["fill"]) if node.op == "all_to_all" else 1.0  # only the routed rows travel
    return int(fill * device_bytes(v, plan.kinds[v], precision, padded=padded))


def estimate(graph: Graph, mesh: Mesh, plan: MemoryPlan, precision: Precision | None = None,
             fidelity: str = "hifi2", impls: list[str] | None = None) -> CostReport:  # fmt: skip
    """Cost of every step of `plan.order` (a sharded graph's nodes) on `mesh`; `impls`: each step's
    implementation as the place pass chose it (default: place's device choice)."""
    precision = precision or Precision()
    chip = mesh.chip
    peak = chip.peak_flops(fidelity)
    steps = []
    for i, node in enumerate(plan.order):
        impl = impls[i] if impls is not None else device_impl(node)
        if node.op in COLLECTIVES:
            axis = int(node.attrs["cluster_axis"])
            payload = comm_payload(node, plan, precision)
            steps.append(StepCost(i, node, f"{impl}(cluster_axis={axis})", 0, payload,
                                  mesh.ccl_seconds(node.op, payload, axis), "link"))  # fmt: skip
            continue
        flops = int(get_op(node.op).flops(node))
        nbytes = _compute_bytes(node, plan)
        t_mem = nbytes / chip.dram_bw
        t_math = flops / peak if node.op in MATMUL_OPS else 0.0
        bound = "local" if node.op == "mesh_partition" else ("compute" if t_math > t_mem else "memory")
        steps.append(StepCost(i, node, impl, flops, nbytes, max(t_math, t_mem), bound))
    tokens = next(
        (v.sharding.global_shape if v.sharding else v.shape for v in graph.inputs if v.name == "tokens"), ()
    )
    ntok = 1
    for d in tokens:
        ntok *= d
    return CostReport(steps, fidelity, ntok)


def comm_volume(
    graph: Graph, plan: MemoryPlan, precision: Precision | None = None, padded: bool = False
) -> dict:
    """Per-device collective payload bytes by (collective, cluster_axis): what the link formula is applied to."""
    precision = precision or Precision()
    out: dict[tuple[str, int], int] = defaultdict(int)
    for node in graph.nodes:
        if node.op in COLLECTIVES:
            out[(node.op, int(node.attrs["cluster_axis"]))] += comm_payload(node, plan, precision, padded)
    return dict(out)
