"""plan_memory: per-device DRAM of a sharded graph, and a memory-aware schedule. Pure functions.

On the device every tensor is stored in TILE layout: its last two dims padded to multiples of 32 (a 1-D tensor is
one row of tiles, a scalar one tile), in the dtype the precision policy gives its kind:
  parameters -> `weights` (bfloat16, or bfloat8_b: 1088 bytes per 32x32 tile with its shared exponents),
  optimizer moments -> float32, weight gradients -> `grads`, activations -> `activations`, token ids -> int32,
  scalars (loss, norms, lr, step) -> float32.
Parameters, optimizer state and data inputs live for the whole step. Every other value is allocated when its node
runs and freed after its last reader (graph outputs and update sources are kept to the end); freed buffers are
reused best-fit by later values, so the peak is that of a real allocator, not the sum of all values.
The schedule is memory-aware: it keeps the better (lower peak) of the given order and a greedy topological order
that always runs the ready node that adds the fewest bytes.

The host (numpy) Program uses the same allocator (`allocate`) for its buffers, pooled by dtype, in elements
(`plan_host_buffers`), after `in_place_updates` picked the update results written straight into their state.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from tilegraph.graph.ir import Graph, Node, Value, last_uses
from tilegraph.graph.passes.schedule import topological_order
from tilegraph.ops import get_op

from tilegraph.errors import ShardingError
from tilegraph.tiles import DTYPE_BYTES, padded_numel

# Ops through which a weight gradient flows unchanged in kind on its way to the optimizer.
_GRAD_PATH_OPS = ("add", "all_reduce", "reduce_scatter", "all_gather", "mesh_partition")


@dataclass(frozen=True)
class Precision:
    """Device dtypes by kind of tensor (the numpy graphs are float32/float64; the device is not)."""

    weights: str = "bfloat16"
    activations: str = "bfloat16"
    grads: str = "bfloat16"
    optimizer: str = "float32"

    def __post_init__(self):
        for kind in ("weights", "activations", "grads", "optimizer"):
            if getattr(self, kind) not in DTYPE_BYTES:
                raise ShardingError(
                    f"precision {kind}={getattr(self, kind)!r}; use one of {', '.join(DTYPE_BYTES)}"
                )


def gradient_values(graph: Graph) -> set[Value]:
    """Values that are weight gradients: the grad operand of each adamw, back through adds and collectives."""
    grads: set[Value] = set()
    for node in graph.nodes:
        if node.op == "adamw":
            grads.add(node.inputs[1])
    for node in reversed(graph.nodes):
        if node.outputs[0] in grads and node.op in _GRAD_PATH_OPS:
            grads.update(node.inputs)
        if node.op in ("linear_wgrad", "embedding_bwd") and any(o in grads for o in node.outputs):
            grads.update(node.outputs)
    for key, v in graph.outputs.items():
        if key.startswith("grad:"):
            grads.add(v)
    return grads


def classify(graph: Graph) -> dict[Value, str]:
    """Kind of every value: param, optimizer, input, gradient, scalar (norms), activation."""
    grads = gradient_values(graph)
    kinds = {}
    for v in graph.values():
        if v.role == "param":
            kinds[v] = "param"
        elif v.role == "state":
            kinds[v] = "optimizer"
        elif v.role == "input":
            kinds[v] = "input"
        else:
            kinds[v] = "gradient" if v in grads else "activation"
    for node in graph.nodes:  # the new values of params / moments are stored like what they replace
        if node.op == "global_norm" or (node.op == "all_gather" and node.inputs[0].shape == ()):
            kinds[node.outputs[0]] = "scalar"  # norms (and per-device norms stacked) stay float32
        if node.op == "adamw":
            kinds[node.outputs[0]] = "param"
            kinds[node.outputs[1]] = kinds[node.outputs[2]] = "optimizer"
    return kinds


def device_dtype(v: Value, kind: str, precision: Precision) -> str:
    if v.dtype.startswith("int"):
        return v.dtype
    if v.shape == () or kind == "scalar":
        return "float32"
    return {
        "param": precision.weights,
        "optimizer": precision.optimizer,
        "gradient": precision.grads,
    }.get(kind, precision.activations)


def device_bytes(v: Value, kind: str, precision: Precision, padded: bool = True) -> int:
    n = padded_numel(v.shape) if padded else v.type.numel
    return round(n * DTYPE_BYTES[device_dtype(v, kind, precision)])


@dataclass
class MemoryPlan:
    order: list[Node]
    kinds: dict[Value, str]
    bytes_of: dict[Value, int]
    persistent: dict[str, int]  # param / optimizer / input bytes per device
    peak_live: int  # transient bytes live at the worst moment (lower bound of any allocator)
    peak_step: int  # index in `order` where that happens
    peak_by_kind: dict[str, int]  # transient bytes at the peak split into activation / gradient
    gradient_bytes: (
        int  # all weight gradients (as the optimizer reads them); all live at once around clipping
    )
    allocated: int  # transient bytes the best-fit buffer pool holds at its high-water mark
    buffers: int
    schedule: str  # which order won
    dram_bytes: int  # device capacity
    notes: list[str] = field(default_factory=list)

    @property
    def peak_dram(self) -> int:
        return sum(self.persistent.values()) + self.allocated

    @property
    def fits(self) -> bool:
        return self.peak_dram <= self.dram_bytes

    def check_fits(self, what: str) -> None:
        if not self.fits:
            gib = 2**30
            slack = {"allocator slack": self.allocated - self.peak_live}
            kinds = {**self.persistent, **self.peak_by_kind, **slack}
            parts = ", ".join(f"{k} {b / gib:.1f}" for k, b in kinds.items() if b)
            raise ShardingError(
                f"{what} needs {self.peak_dram / gib:.1f} GiB of DRAM per device ({parts} GiB) but a device has "
                f"{self.dram_bytes / gib:.1f} GiB: over by {(self.peak_dram - self.dram_bytes) / gib:.1f} GiB; use a "
                f"bigger mesh, a smaller --batch/--seq, --weights bfloat8_b, or --no-fit-check to see the plan"
            )


@dataclass
class Allocation:
    """Buffers of one order of nodes: value -> buffer, each buffer's pool and size, and the live peak."""

    where: dict[Value, int]
    pools: list[Hashable]
    sizes: list[int]
    peak: int  # largest sum of sizes of live values
    peak_step: int
    peak_set: list[Value]

    @property
    def allocated(self) -> int:
        return sum(self.sizes)


def allocate(order: list[Node], size_of: Callable[[Value], int], transient: set[Value], pinned: set[Value],
             pool_of: Callable[[Value], Hashable] = lambda v: None) -> Allocation:
    """The one buffer planner: each `transient` output gets a buffer when its node runs, best-fit among the free
    buffers of its pool (the smallest one at least its size), else a new one; a buffer is free again after the
    last reader of its value ran. `pinned` values (read after the last node) keep theirs."""
    last = last_uses(order, pinned)
    where: dict[Value, int] = {}
    pools: list[Hashable] = []
    sizes: list[int] = []
    free: dict[Hashable, list[tuple[int, int]]] = {}  # pool -> sorted (size, buffer) of free buffers
    live = peak = peak_step = 0
    live_set: set[Value] = set()
    peak_set: list[Value] = []
    for i, node in enumerate(order):
        for v in node.outputs:
            if v not in transient:
                continue
            b, pool = size_of(v), pool_of(v)
            cands = free.get(pool, [])
            j = bisect.bisect_left(cands, (b, -1))
            if j < len(cands):
                where[v] = cands.pop(j)[1]
            else:
                where[v] = len(sizes)
                sizes.append(b)
                pools.append(pool)
            live += b
            live_set.add(v)
        if live > peak:
            peak, peak_step, peak_set = live, i, list(live_set)
        dying = [v for v in node.inputs if last.get(v) == i] + [v for v in node.outputs if v not in last]
        for v in dict.fromkeys(dying):
            if v in live_set:
                live_set.discard(v)
                live -= size_of(v)
                buf = where[v]
                bisect.insort(free.setdefault(pools[buf], []), (sizes[buf], buf))
    return Allocation(where, pools, sizes, peak, peak_step, peak_set)


def in_place_updates(graph: Graph) -> dict[Value, Value]:
    """Update results that can be written straight into the state array they replace (update dst -> src).

    Allowed when the producing op declares `outputs_may_alias_inputs` (it writes each output only after its last
    read of the inputs), the replaced value is one of that node's inputs, and no later step reads it.
    """
    last = last_uses(graph.nodes)
    index = {id(n): i for i, n in enumerate(graph.nodes)}
    aliases: dict[Value, Value] = {}
    for src, dst in graph.updates.items():
        node = dst.producer
        if (
            node is not None
            and get_op(node.op).outputs_may_alias_inputs
            and src in node.inputs
            and last.get(src) == index.get(id(node))
            and dst not in graph.outputs.values()
        ):
            aliases[dst] = src
    return aliases


def plan_host_buffers(graph: Graph, aliases: dict[Value, Value]) -> Allocation:
    """Host buffers of a scheduled graph: every node output except the in-place `aliases`, in elements, pooled by
    dtype (a buffer serves any later value of its dtype that fits in it)."""
    transient = {v for n in graph.nodes for v in n.outputs if v not in aliases}
    return allocate(graph.nodes, lambda v: v.type.numel, transient, graph.pinned(), lambda v: v.dtype)


def greedy_order(graph: Graph, bytes_of: dict[Value, int], transient: set[Value]) -> list[Node]:
    """Topological order that runs, among ready nodes, the one adding the fewest transient bytes (outputs minus
    inputs it reads for the last time); ties keep the given order."""
    nodes = graph.nodes
    users: dict[Value, int] = {}
    for n in nodes:
        for v in set(n.inputs):
            users[v] = users.get(v, 0) + 1
    pinned = graph.pinned()

    def delta(i: int) -> int:
        n = nodes[i]
        add = sum(bytes_of[v] for v in n.outputs if v in transient)
        freed = sum(
            bytes_of[v] for v in set(n.inputs) if v in transient and users[v] == 1 and v not in pinned
        )
        return add - freed

    def ran(i: int) -> None:
        for v in set(nodes[i].inputs):
            users[v] -= 1

    return topological_order(graph, nodes, delta, ran)


def plan_memory(
    graph: Graph, dram_bytes: int, precision: Precision | None = None, schedules=("program", "greedy")
) -> MemoryPlan:
    """Per-device memory of a sharded graph (local shapes) under `precision`, with the schedule (of `schedules`)
    that minimizes it."""
    precision = precision or Precision()
    kinds = classify(graph)
    bytes_of = {v: device_bytes(v, kinds[v], precision) for v in graph.values()}
    persistent: dict[str, int] = {"param": 0, "optimizer": 0, "input": 0}
    for v in graph.inputs:
        persistent[kinds[v]] += bytes_of[v]
    # adamw updates its param and moments in place (ttnn's moreh_adamw writes into them), and kv_cache_write its
    # cache (ttnn's update_cache / fill_cache): no new buffers.
    transient = {v for n in graph.nodes if n.op not in ("adamw", "kv_cache_write") for v in n.outputs}
    pinned = graph.pinned()
    best = None
    for name in schedules:
        order = list(graph.nodes) if name == "program" else greedy_order(graph, bytes_of, transient)
        alloc = allocate(order, bytes_of.__getitem__, transient, pinned)
        if best is None or alloc.allocated < best[1].allocated:
            best = (name, alloc, order)
    name, alloc, order = best
    by_kind = {"activation": 0, "gradient": 0}
    for v in alloc.peak_set:
        k = kinds[v] if kinds[v] in by_kind else "activation"
        by_kind[k] += bytes_of[v]
    names = {"param": "parameters", "optimizer": "optimizer state", "input": "inputs"}
    return MemoryPlan(
        order=order, kinds=kinds, bytes_of=bytes_of,
        persistent={names[k]: b for k, b in persistent.items()},
        peak_live=alloc.peak, peak_step=alloc.peak_step,
        peak_by_kind={"activations": by_kind["activation"], "gradients": by_kind["gradient"]},
        gradient_bytes=sum(bytes_of[n.inputs[1]] for n in graph.nodes if n.op == "adamw"),
        allocated=alloc.allocated, buffers=len(alloc.sizes), schedule=name, dram_bytes=dram_bytes,
    )  # fmt: skip
