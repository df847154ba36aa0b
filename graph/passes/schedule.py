"""schedule: order nodes topologically and drop dead ones. Graph -> Graph (a new Graph; the input is unchanged).

Live nodes are those an output or an update depends on. The order is a stable topological sort: among ready nodes
the one that came first in the builder's order goes first, so an already-sensible order (forward, then backward in
reverse) is kept and the result is deterministic.
"""

from __future__ import annotations

import heapq

from tilegraph.graph.ir import Graph

from tilegraph.errors import ShapeError


def live_nodes(graph: Graph) -> list[int]:
    """Indices (ascending) of nodes some output or update depends on; found through producers, so the current
    node order does not matter."""
    index = {id(n): i for i, n in enumerate(graph.nodes)}
    live: set[int] = set()
    stack = [v for v in [*graph.outputs.values(), *graph.updates.values()]]
    while stack:
        v = stack.pop()
        node = v.producer
        if node is None or id(node) not in index or index[id(node)] in live:
            continue
        live.add(index[id(node)])
        stack.extend(node.inputs)
    return sorted(live)


def schedule(graph: Graph) -> Graph:
    nodes = [graph.nodes[i] for i in live_nodes(graph)]
    producer_index = {v: i for i, n in enumerate(nodes) for v in n.outputs}
    waiting = [0] * len(nodes)
    consumers: list[list[int]] = [[] for _ in nodes]
    for i, n in enumerate(nodes):
        deps = {producer_index[v] for v in n.inputs if v in producer_index}
        waiting[i] = len(deps)
        for d in deps:
            consumers[d].append(i)
    ready = [i for i, w in enumerate(waiting) if w == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for c in consumers[i]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, c)
    if len(order) != len(nodes):
        stuck = [nodes[i].op for i in range(len(nodes)) if i not in set(order)]
        raise ShapeError(f"graph {graph.name!r} has a cycle through ops {stuck[:5]}; an SSA graph cannot")

    g = Graph(graph.name)
    g.inputs = list(graph.inputs)
    g.nodes = [nodes[i] for i in order]
    g.outputs = dict(graph.outputs)
    g.updates = dict(graph.updates)
    g._names = set(graph._names)
    g._counter = graph._counter
    return g
