"""schedule: the one scheduler (a topological order under a priority) and the one dead-node pass. Pure functions.

`live_nodes` finds the nodes an output or an update depends on. `topological_order` runs, among the ready nodes,
the one of smallest priority; with the default priority (the node's position) it is a stable topological sort, so
an already-sensible order (forward, then backward in reverse) is kept and the result is deterministic.
plan_memory asks it for a memory-aware order too (priority: the bytes a node adds). `schedule(graph, order)` is
the pass: the graph's live nodes in that order (default: the stable one), as a copy.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from tilegraph.graph.ir import Graph, Node

from tilegraph.errors import ShapeError


def live_nodes(graph: Graph) -> list[Node]:
    """Nodes (in graph order) some output or update depends on; found through producers, so the current node
    order does not matter."""
    index = {id(n): i for i, n in enumerate(graph.nodes)}
    live: set[int] = set()
    stack = [*graph.outputs.values(), *graph.updates.values()]
    while stack:
        v = stack.pop()
        node = v.producer
        if node is None or id(node) not in index or index[id(node)] in live:
            continue
        live.add(index[id(node)])
        stack.extend(node.inputs)
    return [graph.nodes[i] for i in sorted(live)]


def drop_dead(graph: Graph) -> Graph:
    """A copy of `graph` without the nodes no output or update depends on."""
    return graph.copy(live_nodes(graph))


def topological_order(graph: Graph, nodes: list[Node], priority: Callable[[int], object] | None = None,
                      on_run: Callable[[int], None] | None = None) -> list[Node]:
    """`nodes` in a topological order: among ready nodes the one with the smallest (priority(i), i) runs first,
    i its position in `nodes`; priority is evaluated when a node becomes ready, after `on_run` saw each node run."""
    producer_index = {v: i for i, n in enumerate(nodes) for v in n.outputs}
    waiting = [0] * len(nodes)
    consumers: list[list[int]] = [[] for _ in nodes]
    for i, n in enumerate(nodes):
        deps = {producer_index[v] for v in n.inputs if v in producer_index}
        waiting[i] = len(deps)
        for d in deps:
            consumers[d].append(i)
    key = priority or (lambda i: 0)
    ready = [(key(i), i) for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        _, i = heapq.heappop(ready)
        order.append(i)
        if on_run is not None:
            on_run(i)
        for c in consumers[i]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, (key(c), c))
    if len(order) != len(nodes):
        done = set(order)
        stuck = [nodes[i].op for i in range(len(nodes)) if i not in done]
        raise ShapeError(f"graph {graph.name!r} has a cycle through ops {stuck[:5]}; an SSA graph cannot")
    return [nodes[i] for i in order]


def schedule(graph: Graph, order: list[Node] | None = None) -> Graph:
    """A copy of `graph` with its live nodes in `order` (default: the stable topological order)."""
    if order is None:
        order = topological_order(graph, live_nodes(graph))
    return graph.copy(order)
