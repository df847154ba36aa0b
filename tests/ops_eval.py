"""Test helpers for the op library: evaluate a tiny Graph node by node with each op's numpy reference, and
get gradients from an op's backward rule. Independent of the runtime (runtime/) on purpose: it checks the
op definitions alone."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from tilegraph.graph import Graph, Value
from tilegraph.ops import get_op


def evaluate(graph: Graph, feeds: Mapping[Value, np.ndarray]) -> dict[Value, np.ndarray]:
    """Every value of `graph`, computing nodes in order with op.reference; checks outputs match inferred types."""
    env = dict(feeds)
    for node in graph.nodes:
        outs = get_op(node.op).reference([env[v] for v in node.inputs], node.attrs)
        assert len(outs) == len(node.outputs), node
        for value, out in zip(node.outputs, outs):
            assert out.shape == value.shape, f"{node}: reference gave shape {out.shape}"
            assert str(out.dtype) == value.dtype, f"{node}: reference gave dtype {out.dtype}"
            env[value] = out
    return env


def backward_rule_grads(
    op: str, inputs: Sequence[np.ndarray], attrs: Mapping[str, object], cotangents: Sequence[np.ndarray | None]
) -> list[np.ndarray | None]:
    """Gradients w.r.t. `inputs` of sum_i <out_i, cotangent_i>, obtained by emitting the op's backward rule into a
    graph and evaluating it with references."""
    g = Graph("vjp")
    xs = [g.input(f"x{i}", a.shape, str(a.dtype)) for i, a in enumerate(inputs)]
    outs = g.call(op, *xs, **attrs)
    outs = outs if isinstance(outs, tuple) else (outs,)
    cts = [None if c is None else g.input(f"ct{i}", c.shape, str(c.dtype)) for i, c in enumerate(cotangents)]
    grads = get_op(op).backward(g, g.nodes[-1], cts)
    assert len(grads) == len(inputs), f"{op}: backward returned {len(grads)} grads for {len(inputs)} inputs"
    feeds = dict(zip(xs, inputs))
    feeds.update({v: c for v, c in zip(cts, cotangents) if v is not None})
    env = evaluate(g, feeds)
    result = []
    for x, grad in zip(xs, grads):
        if grad is None:
            result.append(None)
        else:
            assert grad.shape == x.shape and grad.dtype == x.dtype, f"{op}: grad {grad} for input {x}"
            result.append(env[grad])
    return result


def central_difference(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """d f / d x by central differences, perturbing `x` in place one element at a time (float64)."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        orig = flat[i]
        flat[i] = orig + eps
        up = f()
        flat[i] = orig - eps
        down = f()
        flat[i] = orig
        gflat[i] = (up - down) / (2 * eps)
    return grad


def check_backward_against_fd(
    op: str,
    inputs: list[np.ndarray],
    attrs: Mapping[str, object],
    rng: np.random.Generator,
    wrt: Sequence[int],
    cotangent_for: Sequence[bool] | None = None,
) -> None:
    """The backward rule's gradients equal central finite differences of L = sum_i <out_i, R_i> (float64).

    `cotangent_for[i]` False means output i gets no gradient (e.g. attention's lse).
    """
    opdef = get_op(op)
    full_attrs = {**opdef.attrs, **attrs}
    outs = opdef.reference(inputs, full_attrs)
    cotangent_for = cotangent_for or [True] * len(outs)
    cts = [rng.standard_normal(o.shape) if use else None for o, use in zip(outs, cotangent_for)]

    def loss() -> float:
        outs = opdef.reference(inputs, full_attrs)
        return float(sum(np.sum(o * c) for o, c in zip(outs, cts) if c is not None))

    grads = backward_rule_grads(op, inputs, attrs, cts)
    for i in wrt:
        numeric = central_difference(loss, inputs[i])
        assert grads[i] is not None, f"{op}: no gradient for input {i}"
        # float64 central differences with eps=1e-6: truncation error ~eps^2*f''' ~1e-12 and rounding error
        # ~1e-16*|L|/eps ~1e-10*|L|; 1e-6 relative to the gradient's scale leaves a wide margin.
        scale = max(1.0, float(np.abs(numeric).max()))
        np.testing.assert_allclose(grads[i], numeric, rtol=1e-6, atol=1e-6 * scale, err_msg=f"{op} input {i}")
