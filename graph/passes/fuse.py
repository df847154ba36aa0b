"""fuse: rewrite op patterns that a custom kernel computes in one go. Graph -> Graph (the input is unchanged).

The SwiGLU MLP gate, forward and (in training graphs) backward:

    a = linear(h, w1);  b = linear(h, w3);  y = silu_mul(a, b)    ==>    y = swiglu(h, w1, w3)

    da, db = silu_mul_bwd(a, b, dy)
    dxa = linear(da, w1, transpose_w);  dw1 = linear_wgrad(h, da)
    dxb = linear(db, w3, transpose_w);  dw3 = linear_wgrad(h, db)  ==>  dx, dw1, dw3 = swiglu_bwd(h, w1, w3, dy)
    dx = add(dxa, dxb)

The forward applies where `a` and `b` are read by nothing but the silu_mul (forward and inference graphs) or by
the silu_mul and exactly the silu_mul_bwd above (training graphs: then both rewrites apply together, so the
backward recomputes a and b from h inside its kernel instead of keeping them from the forward). No value that
disappears may be a graph output. It runs in every compile (tilegraph.compiler.PASSES). With backward=False the
training-graph rewrite is skipped (the numpy backend: there keeping a and b costs memory, recomputing them costs
two GEMMs per layer, about a tenth of a nano-trickster training step).
"""

from __future__ import annotations

from types import MappingProxyType

from tilegraph.graph.ir import Graph, Node, Value
from tilegraph.ops import get_op


def _linears(node: Node):
    """(h, w1, w3, la, lb) when the inputs of silu_mul / silu_mul_bwd `node` come from linear(h, w1), linear(h, w3)."""
    a, b = node.inputs[:2]
    la, lb = a.producer, b.producer
    if la is None or lb is None or la is lb or la.op != "linear" or lb.op != "linear":
        return None
    if la.attrs.get("transpose_w") or lb.attrs.get("transpose_w"):
        return None
    (h, w1), (h3, w3) = la.inputs, lb.inputs
    if h is not h3:
        return None
    return h, w1, w3, la, lb


def _grad_of_linear(d: Value, h: Value, w: Value, users):
    """(the dx linear, the wgrad node) when `d` is read exactly by linear(d, w, transpose_w) and linear_wgrad(h, d)."""
    nodes = users[d]
    if len(nodes) != 2:
        return None
    lin = [n for n in nodes if n.op == "linear" and n.inputs == (d, w) and n.attrs.get("transpose_w")]
    wg = [n for n in nodes if n.op == "linear_wgrad" and n.inputs == (h, d) and not n.attrs.get("transpose_w")]
    if len(lin) != 1 or len(wg) != 1:
        return None
    return lin[0], wg[0]


def _swiglu_bwd_match(bwd: Node, h, w1, w3, users, outputs):
    """The nodes folded into swiglu_bwd and its (dx, dw1, dw3) values, for silu_mul_bwd node `bwd`, else None."""
    da, db = bwd.outputs
    ga, gb = _grad_of_linear(da, h, w1, users), _grad_of_linear(db, h, w3, users)
    if ga is None or gb is None:
        return None
    (lin_a, wg_a), (lin_b, wg_b) = ga, gb
    dxa, dxb = lin_a.outputs[0], lin_b.outputs[0]
    if len(users[dxa]) != 1 or users[dxa] != users[dxb]:
        return None
    add = users[dxa][0]
    if add.op != "add" or set(add.inputs) != {dxa, dxb}:
        return None
    if {da, db, dxa, dxb} & outputs:
        return None
    return (lin_a, wg_a, lin_b, wg_b, add), (add.outputs[0], wg_a.outputs[0], wg_b.outputs[0])


def fuse(graph: Graph, backward: bool = True) -> Graph:
    users = graph.users()
    outputs = set(graph.outputs.values()) | set(graph.updates.values())
    # id(node) -> (new op, its inputs, the old output values it takes over), at that node's position.
    replace: dict[int, tuple[str, tuple, tuple]] = {}
    dropped: set[int] = set()  # id() of the nodes folded away
    for node in graph.nodes:
        if node.op != "silu_mul":
            continue
        m = _linears(node)
        if m is None:
            continue
        h, w1, w3, la, lb = m
        a, b = node.inputs
        if a in outputs or b in outputs:
            continue
        others = [n for n in users[a] if n is not node]
        if others != [n for n in users[b] if n is not node]:
            continue
        if not others:  # forward / inference graph
            pass
        elif backward and len(others) == 1 and others[0].op == "silu_mul_bwd" and others[0].inputs[:2] == (a, b):
            bwd = others[0]
            mb = _swiglu_bwd_match(bwd, h, w1, w3, users, outputs)
            if mb is None:
                continue
            folded, grads = mb
            # At the silu_mul_bwd's place: its inputs exist there, and every node folded into it comes later.
            replace[id(bwd)] = ("swiglu_bwd", (h, w1, w3, bwd.inputs[2]), grads)
            dropped.update(id(n) for n in folded)
        else:
            continue
        replace[id(node)] = ("swiglu", (h, w1, w3), node.outputs)
        dropped.update((id(la), id(lb)))

    if not replace:
        return graph
    kept = {v.name for n in graph.nodes if id(n) in replace for v in replace[id(n)][2]}
    gone = {v.name for n in graph.nodes if id(n) in dropped or id(n) in replace for v in n.outputs} - kept
    g = graph.copy([])
    g._names -= gone
    # Nodes downstream of a rewrite get new Node/Value objects (with the same names), so the input graph's
    # values keep pointing at their own producers.
    remap: dict[Value, Value] = {}
    for node in graph.nodes:
        if id(node) in dropped:
            continue
        if id(node) in replace:
            op, ins, olds = replace[id(node)]
            news = tuple(Value(v.name, v.type, v.role, sharding=v.sharding) for v in olds)
            fused = node.rebuilt(op, tuple(remap.get(v, v) for v in ins), news,
                                 MappingProxyType(dict(get_op(op).attrs)))
            remap.update(zip(olds, news))
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
