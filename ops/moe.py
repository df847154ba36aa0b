"""Mixture of experts: moe_router(logits) {top_k, aux_coef} -> (gates, aux) and moe_experts(h, gates, w1, w3, w2)
{top_k} -> y, with their backward ops moe_router_bwd and moe_experts_bwd.

Router (Mixtral): p = softmax(logits) over the E experts of each token; the token goes to its top_k experts, with
gates renormalised over them, g_e = p_e / sum_{j in top-k} p_j (= softmax of the top-k logits), and g_e = 0 for the
others, so `gates` [B, S, E] is dense with exactly top_k non-zeros per token. Ties break towards the lower expert.
Load-balancing loss (Switch Transformer, eq. 4, extended to top-k as Mixtral / HF do):
    aux = aux_coef * E * sum_e f_e * P_e,  f_e = (token-slots routed to e) / (N * top_k),  P_e = mean_t p_{t,e}
over the N tokens of the step; f is a count (no gradient), so d aux / d p_{t,e} = aux_coef * E * f_e / N.
Experts (SwiGLU, like the dense MLP): y_t = sum_e g_{t,e} * (silu(h_t W1_e) * (h_t W3_e)) W2_e, computed only for the
tokens routed to e: each expert gathers its tokens, runs three GEMMs and scatter-adds, so the work (and `flops`)
is top_k experts per token, not E.
Weights: w1, w3 [E, H, F], w2 [E, F, H].
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from tilegraph.ops._util import compute_dtype, expect_arity, expect_float, positive_int_attr
from tilegraph.ops.base import Op, TensorType, register
from tilegraph.ops.placement import P, R, Shard, no_partial

from tilegraph.errors import ShapeError


# ---------------------------------------------------------------------------------------------------------------
# Router
# ---------------------------------------------------------------------------------------------------------------
def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def top_k_mask(logits: np.ndarray, k: int) -> np.ndarray:
    """bool [..., E]: the k largest logits of each row (stable: ties go to the lower expert index)."""
    order = np.argsort(-logits, axis=-1, kind="stable")[..., :k]
    mask = np.zeros(logits.shape, bool)
    np.put_along_axis(mask, order, True, axis=-1)
    return mask


def router_reference(logits, top_k, aux_coef):
    """(gates [..., E], aux []) in logits' dtype."""
    dt = compute_dtype(logits)
    x = logits.astype(dt, copy=False)
    e = x.shape[-1]
    mask = top_k_mask(x, top_k)
    gates = np.where(mask, _softmax(np.where(mask, x, -np.inf)), 0.0).astype(dt)
    p = _softmax(x).reshape(-1, e)
    n = p.shape[0]
    f = mask.reshape(-1, e).sum(axis=0) / (n * top_k)
    aux = np.asarray(aux_coef * e * np.sum(f * p.mean(axis=0)), dtype=dt)
    return gates, aux


def router_bwd_reference(logits, dgates, daux, top_k, aux_coef):
    """d logits: through the softmax over the top-k (gates) and through the full softmax (aux)."""
    dt = compute_dtype(logits, dgates)
    x = logits.astype(dt, copy=False)
    e = x.shape[-1]
    mask = top_k_mask(x, top_k)
    g = np.where(mask, _softmax(np.where(mask, x, -np.inf)), 0.0)
    dg = np.where(mask, dgates, 0.0)
    d_top = g * (dg - (g * dg).sum(axis=-1, keepdims=True))
    p = _softmax(x)
    n = int(np.prod(x.shape[:-1]))
    f = mask.reshape(-1, e).sum(axis=0) / (n * top_k)
    dp = np.broadcast_to(float(daux) * aux_coef * e * f / n, x.shape)
    d_aux = p * (dp - (p * dp).sum(axis=-1, keepdims=True))
    return (d_top + d_aux).astype(dt)


def _router_attrs(op, attrs, e):
    k = positive_int_attr(op, attrs, "top_k")
    if k > e:
        raise ShapeError(f"op {op!r}: top_k={k} is more than the {e} experts in logits' last dim; use top_k <= {e}")
    coef = attrs["aux_coef"]
    if isinstance(coef, bool) or not isinstance(coef, (int, float)) or coef < 0:
        raise ShapeError(f"op {op!r}: aux_coef={coef!r} must be a number >= 0")
    return k, float(coef)


def _replicated(node, placements, axis):
    """The router's statistics (f, P) are over every token of the step, so it runs on whole (gathered) logits:
    [B, S, E] is small next to the activations."""
    return [R] * len(node.inputs), [R] * len(node.outputs)


@register
class MoERouter(Op):
    name = "moe_router"
    attrs: ClassVar[dict] = {"top_k": 2, "aux_coef": 0.01}
    shard = staticmethod(_replicated)

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["logits"])
        (x,) = inputs
        expect_float(self.name, "logits", x)
        if len(x.shape) < 2:
            raise ShapeError(f"op 'moe_router': logits {list(x.shape)} must be [..., experts]")
        _router_attrs(self.name, attrs, x.shape[-1])
        return [x, TensorType((), x.dtype)]

    def reference(self, inputs, attrs):
        return list(router_reference(inputs[0], int(attrs["top_k"]), float(attrs["aux_coef"])))

    def backward(self, g, node, grads):
        dgates, daux = grads
        (x,) = node.inputs
        if dgates is None:
            dgates = g.call("fill", shape=x.shape, value=0.0, dtype=x.dtype, name=f"{x.name}.no_dgates")
        if daux is None:
            daux = g.call("fill", shape=(), value=0.0, dtype=x.dtype, name=f"{x.name}.no_daux")
        return [g.call("moe_router_bwd", x, dgates, daux, **dict(node.attrs))]

    def flops(self, node):
        return 8 * node.inputs[0].type.numel  # two softmaxes and the top-k pass: a few operations per logit


@register
class MoERouterBwd(Op):
    name = "moe_router_bwd"
    attrs: ClassVar[dict] = {"top_k": 2, "aux_coef": 0.01}
    shard = staticmethod(_replicated)

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["logits", "dgates", "daux"])
        x, dg, da = inputs
        if dg.shape != x.shape or da.shape != ():
            raise ShapeError(f"op 'moe_router_bwd': dgates {list(dg.shape)} must match logits {list(x.shape)}, "
                             f"daux {list(da.shape)} must be a scalar")
        _router_attrs(self.name, attrs, x.shape[-1])
        return [x]

    def reference(self, inputs, attrs):
        return [router_bwd_reference(*inputs, int(attrs["top_k"]), float(attrs["aux_coef"]))]

    def flops(self, node):
        return 12 * node.inputs[0].type.numel


# ---------------------------------------------------------------------------------------------------------------
# Experts
# ---------------------------------------------------------------------------------------------------------------
def _silu(a):
    return a / (1.0 + np.exp(-a))


def experts_reference(h, gates, w1, w3, w2):
    """y [..., H]: every expert on only its routed tokens (rows with a non-zero gate), gate-weighted, summed."""
    dt = compute_dtype(h, gates, w1)
    x = h.reshape(-1, h.shape[-1]).astype(dt, copy=False)
    g = gates.reshape(-1, gates.shape[-1])
    y = np.zeros_like(x)
    for e in range(w1.shape[0]):
        rows = np.flatnonzero(g[:, e])
        if rows.size == 0:
            continue
        xe = x[rows]
        a, b = xe @ w1[e], xe @ w3[e]
        y[rows] += g[rows, e, None] * ((_silu(a) * b) @ w2[e])
    return y.reshape(h.shape)


def experts_dense_reference(h, gates, w1, w3, w2):
    """The same sum with every expert on every token (unrouted ones weighted 0): the test of the routed path."""
    a = np.einsum("...h,ehf->...ef", h, w1)
    b = np.einsum("...h,ehf->...ef", h, w3)
    out = np.einsum("...ef,efh->...eh", _silu(a) * b, w2)
    return np.einsum("...e,...eh->...h", gates, out)


def experts_bwd_reference(h, gates, w1, w3, w2, dy):
    """(dh, dgates, dw1, dw3, dw2); dgates is <dy, expert output> on routed (token, expert) pairs, 0 elsewhere."""
    dt = compute_dtype(h, gates, w1, dy)
    x = h.reshape(-1, h.shape[-1]).astype(dt, copy=False)
    g = gates.reshape(-1, gates.shape[-1])
    d = dy.reshape(-1, dy.shape[-1]).astype(dt, copy=False)
    dx, dg = np.zeros_like(x), np.zeros(g.shape, dt)
    dw1, dw3, dw2 = np.zeros_like(w1, dtype=dt), np.zeros_like(w3, dtype=dt), np.zeros_like(w2, dtype=dt)
    for e in range(w1.shape[0]):
        rows = np.flatnonzero(g[:, e])
        if rows.size == 0:
            continue
        xe, ge, de = x[rows], g[rows, e, None], d[rows]
        a, b = xe @ w1[e], xe @ w3[e]
        sig = 1.0 / (1.0 + np.exp(-a))
        act = a * sig * b
        out = act @ w2[e]
        dg[rows, e] = (de * out).sum(axis=-1)
        dout = ge * de
        dw2[e] = act.T @ dout
        dact = dout @ w2[e].T
        da = dact * b * sig * (1.0 + a * (1.0 - sig))
        db = dact * a * sig
        dw1[e], dw3[e] = xe.T @ da, xe.T @ db
        dx[rows] += da @ w1[e].T + db @ w3[e].T
    return dx.reshape(h.shape), dg.reshape(gates.shape), dw1, dw3, dw2


def _expert_dims(op, h, gates, w1, w3, w2):
    for what, t in (("h", h), ("gates", gates), ("w1", w1), ("w3", w3), ("w2", w2)):
        expect_float(op, what, t)
    if len(w1.shape) != 3 or w3.shape != w1.shape:
        raise ShapeError(f"op {op!r}: w1 {list(w1.shape)} and w3 {list(w3.shape)} must both be [experts, H, F]")
    e, hid, f = w1.shape
    if w2.shape != (e, f, hid):
        raise ShapeError(f"op {op!r}: w2 {list(w2.shape)} must be [experts, F, H] = {[e, f, hid]}")
    if h.shape[-1] != hid or gates.shape != (*h.shape[:-1], e):
        raise ShapeError(f"op {op!r}: h {list(h.shape)} and gates {list(gates.shape)} must be [..., {hid}] and "
                         f"[..., {e}] for experts of shape {list(w1.shape)}")
    return e, hid, f


def _experts_dp_rule(node, placements, axis):
    """Per token: tokens may be split by batch (dim 0) on an axis whose devices hold the same experts; the weight
    gradients are then partial sums. Expert parallelism (experts split over the TP axis) is not a per-op rule:
    graph/passes/shard.py expands these nodes into dispatch / all_to_all / experts / all_to_all / combine."""
    h = no_partial(placements[0])
    tok = h if isinstance(h, Shard) and h.dim == 0 else R
    ins = [tok, tok, R, R, R] + ([tok] if node.op == "moe_experts_bwd" else [])
    if node.op == "moe_experts":
        return ins, [tok]
    wgrad = P if tok != R else R
    return ins, [tok, tok, wgrad, wgrad, wgrad]


def _pairs(node) -> float:
    ppt = node.attrs.get("pairs_per_token")
    return float(node.attrs["top_k"] if ppt is None else ppt)


@register
class MoEExperts(Op):
    name = "moe_experts"
    # pairs_per_token: routed (token, expert) pairs per row of h when not top_k: on a device holding E/n experts
    # of an expert-parallel layer, top_k / n under balanced routing (what `flops` then counts); None = top_k
    attrs: ClassVar[dict] = {"top_k": 2, "pairs_per_token": None}
    shard = staticmethod(_experts_dp_rule)

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["h", "gates", "w1", "w3", "w2"])
        _expert_dims(self.name, *inputs)
        positive_int_attr(self.name, attrs, "top_k")
        return [inputs[0]]

    def reference(self, inputs, attrs):
        return [experts_reference(*inputs)]

    def backward(self, g, node, grads):
        (dy,) = grads
        if dy is None:
            return [None] * 5
        return list(g.call("moe_experts_bwd", *node.inputs, dy, **dict(node.attrs)))

    def flops(self, node):
        h, _, w1, _, _ = (v.type for v in node.inputs)
        tokens = h.numel // h.shape[-1]
        _, hid, f = w1.shape
        # routed (token, expert) pairs only: 3 GEMMs of 2*H*F, plus the gate-weighted sum
        return int(tokens * _pairs(node) * (3 * 2 * hid * f + 2 * hid))

    def bytes_moved(self, node):
        # the weights of every expert are read (each receives some tokens at these sizes), activations once
        return sum(v.type.nbytes for v in node.inputs) + node.outputs[0].type.nbytes


@register
class MoEExpertsBwd(Op):
    name = "moe_experts_bwd"
    attrs: ClassVar[dict] = {"top_k": 2, "pairs_per_token": None}
    shard = staticmethod(_experts_dp_rule)

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["h", "gates", "w1", "w3", "w2", "dy"])
        _expert_dims(self.name, *inputs[:5])
        if inputs[5].shape != inputs[0].shape:
            raise ShapeError(f"op 'moe_experts_bwd': dy {list(inputs[5].shape)} must match h {list(inputs[0].shape)}")
        return [inputs[0], inputs[1], inputs[2], inputs[3], inputs[4]]

    def reference(self, inputs, attrs):
        return list(experts_bwd_reference(*inputs))

    def flops(self, node):
        # recompute a, b and the output (3 GEMMs), then dW2, dact, dW1, dW3, dh (two GEMMs): 9 per routed pair
        h, _, w1, _, _, _ = (v.type for v in node.inputs)
        tokens = h.numel // h.shape[-1]
        _, hid, f = w1.shape
        return int(tokens * _pairs(node) * (9 * 2 * hid * f + 4 * hid))
