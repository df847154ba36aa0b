"""Reverse-mode autodiff on the IR, and the one-Program training step (backward + clipping + AdamW).

`autodiff` walks the nodes that lie between the parameters and the loss in reverse order and asks each op for its
backward rule (`Op.backward`, emitted as ordinary graph ops), so no backend needs gradient code. A value used by
several nodes (the tied embedding: looked up at the bottom and used as the output projection at the top) receives
one gradient per use; they are summed with `add` ops.
"""

from __future__ import annotations

from dataclasses import dataclass

from tilegraph.graph.ir import Graph, Value
from tilegraph.graph.passes.verify import verify
from tilegraph.ops import get_op

from tilegraph.errors import ShapeError

FLOAT_DTYPES = ("float32", "float64", "bfloat16")


def copy_graph(graph: Graph, name: str | None = None) -> Graph:
    """A new Graph sharing the (immutable) Values and Nodes of `graph`, so appending to it leaves `graph` as it was."""
    g = Graph(name or graph.name)
    g.inputs = list(graph.inputs)
    g.nodes = list(graph.nodes)
    g.outputs = dict(graph.outputs)
    g.updates = dict(graph.updates)
    g._names = set(graph._names)
    g._counter = graph._counter
    return g


def _on_path(graph: Graph, sources: list[Value], target: Value) -> set[int]:
    """Indices of nodes that depend on some source and that the target depends on: the nodes to differentiate."""
    reached = set(sources)
    forward = set()
    for i, node in enumerate(graph.nodes):
        if any(v in reached for v in node.inputs):
            forward.add(i)
            reached.update(node.outputs)
    needed = {target}
    path = set()
    for i in reversed(range(len(graph.nodes))):
        node = graph.nodes[i]
        if any(v in needed for v in node.outputs):
            needed.update(node.inputs)
            if i in forward:
                path.add(i)
    return path


def _name_gradients(g: Graph, first_new: int, inputs, grads) -> None:
    """Rename the gradients a backward rule just created to `d:<input>`, so printed programs read as math
    (`d:layers.0.q_rope` rather than `attention_bwd.0.32`). Values the rule passed through keep their names."""
    fresh = {v for n in g.nodes[first_new:] for v in n.outputs}
    for v, gv in zip(inputs, grads):
        if gv is not None and gv in fresh:
            fresh.discard(gv)
            g._names.discard(gv.name)
            gv.name = g._unique(f"d:{v.name}")


def autodiff(graph: Graph, loss: Value | str = "loss", wrt: list[Value] | None = None) -> Graph:
    """A copy of `graph` with the backward pass appended and outputs `grad:<param>` for every param (or `wrt`)."""
    if isinstance(loss, str):
        if loss not in graph.outputs:
            raise ShapeError(f"graph {graph.name!r} has no output {loss!r} to differentiate; outputs: {list(graph.outputs)}")
        loss = graph.outputs[loss]
    if loss.shape != ():
        raise ShapeError(f"autodiff needs a scalar loss; {loss.name!r} has shape {loss.shape}")
    wrt = graph.params() if wrt is None else list(wrt)
    verify(graph)  # the reverse walk below relies on nodes being in a valid (topological) order
    g = copy_graph(graph, f"{graph.name}+grad")

    grads: dict[Value, Value] = {loss: g.call("fill", shape=(), value=1.0, dtype=loss.dtype, name="grad:loss")}
    for i in sorted(_on_path(graph, wrt, loss), reverse=True):
        node = graph.nodes[i]
        out_grads = [grads.get(v) for v in node.outputs]
        if all(gr is None for gr in out_grads):
            continue
        first_new = len(g.nodes)
        in_grads = get_op(node.op).backward(g, node, out_grads)
        _name_gradients(g, first_new, node.inputs, in_grads)
        if len(in_grads) != len(node.inputs):
            raise ShapeError(
                f"backward rule of op {node.op!r} returned {len(in_grads)} gradients for {len(node.inputs)} inputs"
            )
        for v, gv in zip(node.inputs, in_grads):
            if gv is None or v.dtype not in FLOAT_DTYPES:
                continue
            if gv.type != v.type:
                raise ShapeError(
                    f"backward rule of op {node.op!r} gave gradient {gv.type} for input %{v.name}: {v.type}"
                )
            # A value used more than once gets one gradient per use: sum them.
            grads[v] = g.call("add", grads[v], gv, name=f"grad_acc:{v.name}") if v in grads else gv

    for p in wrt:
        if p not in grads:
            raise ShapeError(f"param {p.name!r} does not influence {loss.name!r}; its gradient would be undefined")
        g.output(f"grad:{p.name}", grads[p])
    return g


@dataclass(frozen=True)
class AdamWConfig:
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    weight_decay: float = 0.1
    clip_norm: float = 1.0


def add_adamw_update(g: Graph, config: AdamWConfig, params: list[Value] | None = None) -> Graph:
    """Append clipping and AdamW to a graph that has `grad:<param>` outputs, in place; returns `g`.

    New inputs: `lr` and `step` (1-based, for bias correction); new state `m:<param>`, `v:<param>`;
    outputs `grad_norm` (before clipping); `g.updates` maps each param and moment to its new value.
    """
    params = g.params() if params is None else params
    dtype = params[0].dtype
    lr = g.input("lr", (), dtype)
    # (a training forward with dropout already has the `step` input: its masks are drawn from it)
    step = next((v for v in g.inputs if v.name == "step"), None) or g.input("step", (), dtype)
    grads = [g.outputs[f"grad:{p.name}"] for p in params]
    norm = g.call("global_norm", *grads, name="grad_norm")
    scale = g.call("clip_scale", norm, max_norm=config.clip_norm, name="clip_scale")
    for p, grad in zip(params, grads):
        m = g.state(f"m:{p.name}", p.shape, p.dtype)
        v = g.state(f"v:{p.name}", p.shape, p.dtype)
        # Decoupled weight decay for matrices only: decaying norm gains toward 0 would fight the normalization.
        wd = config.weight_decay if len(p.shape) >= 2 else 0.0  # [experts, in, out] weights are matrices too
        p_new, m_new, v_new = g.call(
            "adamw", p, grad, m, v, lr, step, scale,
            beta1=config.beta1, beta2=config.beta2, eps=config.eps, weight_decay=wd, name=f"adamw:{p.name}",
        )  # fmt: skip
        g.updates[p] = p_new
        g.updates[m] = m_new
        g.updates[v] = v_new
    g.output("grad_norm", norm)
    return g


def training_step(
    spec, batch: int, seq: int, config: AdamWConfig | None = None, dtype: str = "float32", keep_grads: bool = False,
    dropout_seed: int = 0,
) -> Graph:
    """One training step as one Graph: forward, backward, global-norm clipping, AdamW on every param.

    Outputs `loss` and `grad_norm` (plus `grad:<param>` when keep_grads, for tests); updates params and moments.
    """
    from tilegraph.graph.build import build

    config = config or AdamWConfig()
    fwd = build(spec, batch, seq, dtype, training=True, dropout_seed=dropout_seed)
    g = autodiff(fwd, fwd.outputs["loss"])
    g.name = f"{fwd.name.rsplit('.', 1)[0]}.train_step"
    add_adamw_update(g, config)
    keep = {"loss", "grad_norm"}
    g.outputs = {k: v for k, v in g.outputs.items() if k in keep or (keep_grads and k.startswith("grad:"))}
    return g
