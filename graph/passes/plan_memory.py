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
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field

from tilegraph.graph.ir import Graph, Node, Value

from tilegraph.errors import ShardingError

TILE = 32
DTYPE_BYTES = {
    "float32": 4.0,
    "float64": 8.0,
    "bfloat16": 2.0,
    "bfloat8_b": 1088 / 1024,
    "int32": 4.0,
    "int64": 8.0,
}
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


def padded_numel(shape: Sequence[int]) -> int:
    """Elements stored in TILE layout: last two dims rounded up to multiples of 32."""
    shape = tuple(shape)
    if len(shape) < 2:
        shape = (1,) * (2 - len(shape)) + shape
    lead = 1
    for d in shape[:-2]:
        lead *= d
    rup = lambda d: -(-d // TILE) * TILE
    return lead * rup(shape[-2]) * rup(shape[-1])


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


def _last_use(order: list[Node], pinned: set[Value]) -> dict[Value, int]:
    last: dict[Value, int] = {}
    for i, node in enumerate(order):
        for v in node.inputs:
            last[v] = i
    for v in pinned:
        last[v] = len(order)
    return last


def _simulate(order: list[Node], bytes_of: dict[Value, int], transient: set[Value], pinned: set[Value]):
    """(peak live bytes, step of the peak, live values at the peak, allocator high-water bytes, buffers)."""
    last = _last_use(order, pinned)
    live = peak = peak_step = 0
    peak_set: list[Value] = []
    live_set: set[Value] = set()
    free_sizes: list[int] = []  # sorted sizes of free buffers (best-fit reuse)
    pool = 0
    where: dict[Value, int] = {}
    for i, node in enumerate(order):
        for v in node.outputs:
            if v not in transient:
                continue
            b = bytes_of[v]
            j = bisect.bisect_left(free_sizes, b)
            if j < len(free_sizes):
                where[v] = free_sizes.pop(j)
            else:
                where[v] = b
                pool += b
            live += b
            live_set.add(v)
        if live > peak:
            peak, peak_step, peak_set = live, i, list(live_set)
        dying = [v for v in node.inputs if last.get(v) == i] + [v for v in node.outputs if v not in last]
        for v in dict.fromkeys(dying):
            if v in live_set:
                live_set.discard(v)
                live -= bytes_of[v]
                bisect.insort(free_sizes, where.pop(v))
    return peak, peak_step, peak_set, pool, len(where) + len(free_sizes)


def greedy_order(graph: Graph, bytes_of: dict[Value, int], transient: set[Value]) -> list[Node]:
    """Topological order that runs, among ready nodes, the one adding the fewest transient bytes (outputs minus
    inputs it reads for the last time); ties keep the given order."""
    nodes = graph.nodes
    index = {id(n): i for i, n in enumerate(nodes)}
    producer = {v: index[id(n)] for n in nodes for v in n.outputs}
    users: dict[Value, int] = {}
    for n in nodes:
        for v in set(n.inputs):
            users[v] = users.get(v, 0) + 1
    pinned = set(graph.outputs.values()) | set(graph.updates.values())
    waiting = [0] * len(nodes)
    consumers: list[list[int]] = [[] for _ in nodes]
    for i, n in enumerate(nodes):
        deps = {producer[v] for v in n.inputs if v in producer}
        waiting[i] = len(deps)
        for d in deps:
            consumers[d].append(i)

    def delta(i: int) -> int:
        n = nodes[i]
        add = sum(bytes_of[v] for v in n.outputs if v in transient)
        freed = sum(
            bytes_of[v] for v in set(n.inputs) if v in transient and users[v] == 1 and v not in pinned
        )
        return add - freed

    ready = [(delta(i), i) for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        _, i = heapq.heappop(ready)
        out.append(nodes[i])
        for v in set(nodes[i].inputs):
            users[v] -= 1
        for c in consumers[i]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, (delta(c), c))
    return out


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
    pinned = set(graph.outputs.values()) | set(graph.updates.values())
    best = None
    for name in schedules:
        order = list(graph.nodes) if name == "program" else greedy_order(graph, bytes_of, transient)
        sim = _simulate(order, bytes_of, transient, pinned)
        if best is None or sim[3] < best[1][3]:
            best = (name, sim, order)
    name, (peak, peak_step, peak_set, pool, nbuf), order = best
    by_kind = {"activation": 0, "gradient": 0}
    for v in peak_set:
        k = kinds[v] if kinds[v] in by_kind else "activation"
        by_kind[k] += bytes_of[v]
    names = {"param": "parameters", "optimizer": "optimizer state", "input": "inputs"}
    return MemoryPlan(
        order=order, kinds=kinds, bytes_of=bytes_of,
        persistent={names[k]: b for k, b in persistent.items()},
        peak_live=peak, peak_step=peak_step,
        peak_by_kind={"activations": by_kind["activation"], "gradients": by_kind["gradient"]},
        gradient_bytes=sum(bytes_of[n.inputs[1]] for n in graph.nodes if n.op == "adamw"),
        allocated=pool, buffers=nbuf, schedule=name, dram_bytes=dram_bytes,
    )  # fmt: skip


def schedule_graph(graph: Graph, plan: MemoryPlan) -> Graph:
    """A copy of `graph` with its nodes in the planned order (a new Graph; the input is unchanged)."""
    g = Graph(graph.name)
    g.inputs, g.nodes = list(graph.inputs), list(plan.order)
    g.outputs, g.updates = dict(graph.outputs), dict(graph.updates)
    g._names = set(graph._names)
    for attr in ("mesh", "tp_axis", "dp_axis", "shard_notes", "layout"):
        if hasattr(graph, attr):
            setattr(g, attr, getattr(graph, attr))
    return g
