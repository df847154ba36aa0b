"""fuse: rewrite op patterns that a custom kernel computes in one go. Graph -> Graph (the input is unchanged).

One pattern today, the SwiGLU MLP gate:

    a = linear(h, w1);  b = linear(h, w3);  y = silu_mul(a, b)    ==>    y = swiglu(h, w1, w3)

It applies only where `a` and `b` are read by nothing else and are not graph outputs. A training graph keeps the
unfused form, because its backward reads `a` and `b` (silu_mul_bwd); forward and inference graphs get the fused
op, which the emu/ttnn backends run as one kernel. It runs in every compile (tilegraph.compiler.PASSES).
"""

from __future__ import annotations

from types import MappingProxyType

from tilegraph.graph.ir import Graph, Node, Value
from tilegraph.ops import get_op


def _swiglu_match(node: Node, users: dict[Value, list[Node]], outputs: set[Value]):
    """(h, w1, w3, the two linear nodes) when `node` is the silu_mul of a fusable SwiGLU gate, else None."""
    if node.op != "silu_mul":
        return None
    a, b = node.inputs
    la, lb = a.producer, b.producer
    if la is None or lb is None or la is lb or la.op != "linear" or lb.op != "linear":
        return None
    if la.attrs.get("transpose_w") or lb.attrs.get("transpose_w"):
        return None
    (h, w1), (h3, w3) = la.inputs, lb.inputs
    if h is not h3 or a in outputs or b in outputs:
        return None
    if users[a] != [node] or users[b] != [node]:
        return None
    return h, w1, w3, la, lb


def fuse(graph: Graph) -> Graph:
    users = graph.users()
    outputs = set(graph.outputs.values()) | set(graph.updates.values())
    replace: dict[int, tuple] = {}  # id(silu_mul node) -> (h, w1, w3)
    dropped: set[int] = set()  # id() of the linear nodes folded into a swiglu
    gone: set[str] = set()  # names of the values those nodes produced
    for node in graph.nodes:
        m = _swiglu_match(node, users, outputs)
        if m is not None:
            h, w1, w3, la, lb = m
            replace[id(node)] = (h, w1, w3)
            dropped.update((id(la), id(lb)))
            gone.update(v.name for v in (*la.outputs, *lb.outputs))

    if not replace:
        return graph
    g = graph.copy([])
    g._names -= gone
    # Nodes downstream of a rewrite get new Node/Value objects (with the same names), so the input graph's
    # values keep pointing at their own producers.
    remap: dict[Value, Value] = {}
    for node in graph.nodes:
        if id(node) in dropped:
            continue
        if id(node) in replace:
            h, w1, w3 = (remap.get(v, v) for v in replace[id(node)])
            old = node.outputs[0]
            new = Value(old.name, old.type, old.role, sharding=old.sharding)
            fused = node.rebuilt("swiglu", (h, w1, w3), (new,), MappingProxyType(dict(get_op("swiglu").attrs)))
            remap[old] = new
            g.nodes.append(fused)
            continue
        if not any(v in remap for v in node.inputs):
            g.nodes.append(node)
            continue
        outs = tuple(Value(v.name, v.type, v.role, sharding=v.sharding) for v in node.outputs)
        rebuilt = node.rebuilt(node.op, tuple(remap.get(v, v) for v in node.inputs), outs, node.attrs)
        for old, new in zip(node.outputs, outs):
            remap[old] = new
        g.nodes.append(rebuilt)
    g.outputs = {k: remap.get(v, v) for k, v in graph.outputs.items()}
    g.updates = {remap.get(k, k): remap.get(v, v) for k, v in graph.updates.items()}
    return g
