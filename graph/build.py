"""spec -> forward Graph, and the parameter set it expects.

The block is pre-norm: x + attn(norm(x)), then x + mlp(norm(x)); by default the llama one: RMSNorm, RoPE on q and
k, causal attention with an explicit 1/sqrt(head_dim) scale, SwiGLU emitted unfused (linear, linear, silu_mul,
linear) so autodiff sees plain ops (a fuse pass may rewrite it to `swiglu`); a final norm; logits against the tied
embedding (or `lm_head`); mean cross-entropy. The spec's `norm` (rmsnorm | layernorm), `mlp` (swiglu | geglu |
gelu | relu), `positions` (rope | learned | sinusoidal | alibi | none) and `bias` pick the other variants, each
in one helper below (`_norm`, `_mlp`, `_absolute_positions`, `_linear`).
"""

from __future__ import annotations

import math

import numpy as np
from tilegraph.graph.ir import Graph
from tilegraph.graph.spec import ModelSpec, load_spec

from tilegraph.errors import ShapeError


def param_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape, in graph order. Linear weights are stored [in, out]."""
    spec = load_spec(spec)
    V, H, F = spec.vocab_size, spec.hidden_size, spec.mlp_hidden
    D, nh, nkv = spec.head_dim, spec.num_heads, spec.num_kv_heads
    shapes: dict[str, tuple[int, ...]] = {"tok_embedding": (V, H)}
    if spec.positions == "learned":
        shapes["pos_embedding"] = (spec.max_seq_len, H)
    for i in range(spec.num_layers):
        p = f"layers.{i}."
        shapes.update(_norm_shapes(spec, p + "attn_norm"))
        shapes.update(_linear_shapes(spec, p + "wq", H, nh * D))
        shapes.update(_linear_shapes(spec, p + "wk", H, nkv * D))
        shapes.update(_linear_shapes(spec, p + "wv", H, nkv * D))
        shapes.update(_linear_shapes(spec, p + "wo", nh * D, H))
        shapes.update(_norm_shapes(spec, p + "mlp_norm"))
        shapes.update(_linear_shapes(spec, p + "w1", H, F))
        if spec.mlp in GATED_MLPS:
            shapes.update(_linear_shapes(spec, p + "w3", H, F))
        shapes.update(_linear_shapes(spec, p + "w2", F, H))
    shapes.update(_norm_shapes(spec, "final_norm"))
    if not spec.tie_embeddings:
        shapes["lm_head"] = (H, V)
    return _moe_param_shapes(spec, shapes) if spec.moe is not None else shapes


def _moe_param_shapes(spec: ModelSpec, shapes: dict) -> dict:
    """MoE layers: the dense w1/w3/w2 become `router` [H, E] and expert_w1/w3 [E, H, F], expert_w2 [E, F, H]."""
    E, H, F = spec.moe.experts, spec.hidden_size, spec.mlp_hidden
    out: dict[str, tuple[int, ...]] = {}
    for name, shape in shapes.items():
        layer, _, leaf = name.rpartition(".")
        if layer.startswith("layers.") and leaf in ("w1", "w3", "w2"):
            if leaf == "w1":
                out[layer + ".router"] = (H, E)
            out[f"{layer}.expert_{leaf}"] = (E, F, H) if leaf == "w2" else (E, H, F)
        else:
            out[name] = shape
    return out


# -- issue 14 (arch-a): norm, mlp, positions and bias choices, one helper per feature ---------------------------
GATED_MLPS = {"swiglu": "silu_mul", "geglu": "gelu"}  # mlp kind -> the activation of its gate
PLAIN_MLPS = {"gelu": "gelu", "relu": "relu"}


def _bias_name(weight: str) -> str:
    """layers.0.wq -> layers.0.bq (the bias of a linear sits next to its weight)."""
    head, leaf = weight.rsplit(".", 1)
    return f"{head}.b{leaf[1:]}"


def _linear_shapes(spec: ModelSpec, name: str, k: int, n: int) -> dict[str, tuple[int, ...]]:
    return {name: (k, n), **({_bias_name(name): (n,)} if spec.bias else {})}


def _norm_shapes(spec: ModelSpec, name: str) -> dict[str, tuple[int, ...]]:
    """A norm's gain, and a LayerNorm's beta when the spec has biases (RMSNorm has no beta)."""
    with_beta = spec.bias and spec.norm == "layernorm"
    return {name: (spec.hidden_size,), **({name + "_bias": (spec.hidden_size,)} if with_beta else {})}


def _linear(g: Graph, spec: ModelSpec, p: dict, x, weight: str, name: str):
    y = g.call("linear", x, p[weight], name=name)
    return g.call("add_bias", y, p[_bias_name(weight)], name=name + "_bias") if spec.bias else y


def _norm(g: Graph, spec: ModelSpec, p: dict, x, gain: str, name: str):
    y = g.call(spec.norm, x, p[gain], eps=spec.norm_eps, name=name)
    if gain + "_bias" in p:
        y = g.call("add_bias", y, p[gain + "_bias"], name=name + "_beta")
    return y


def _mlp(g: Graph, spec: ModelSpec, p: dict, h, L: str):
    if spec.mlp in GATED_MLPS:
        gate = _linear(g, spec, p, h, L + "w1", L + "gate")
        up = _linear(g, spec, p, h, L + "w3", L + "up")
        if spec.mlp == "swiglu":  # one fused op (a fuse pass may rewrite the whole MLP to `swiglu`)
            act = g.call("silu_mul", gate, up, name=L + "swiglu")
        else:
            act = g.call("mul", g.call("gelu", gate, name=L + "gelu"), up, name=L + "geglu")
    else:
        act = g.call(PLAIN_MLPS[spec.mlp], _linear(g, spec, p, h, L + "w1", L + "fc"), name=L + spec.mlp)
    return _linear(g, spec, p, act, L + "w2", L + "mlp_out")


def _absolute_positions(g: Graph, spec: ModelSpec, p: dict, x, batch: int, seq: int, dtype: str, offset: int = 0):
    """x plus the learned or sinusoidal position embedding of positions offset..offset+seq-1 (rope and alibi act
    inside attention instead). offset is 0 in training; graph/inference.py passes a decode step's position."""
    if spec.positions == "learned":
        rows = p["pos_embedding"].shape[0]
        if offset + seq > rows:
            raise ShapeError(
                f"spec {spec.name!r}: positions {offset}..{offset + seq - 1} lie beyond the learned position table "
                f"of {rows} rows (max_seq_len); keep the context within {rows} or raise max_seq_len (and retrain)"
            )
        ids = g.call("position_ids", batch=batch, seq=seq, offset=offset, name="position_ids")
        pe = g.call("embedding", p["pos_embedding"], ids, name="pos_embed")
    elif spec.positions == "sinusoidal":
        pe = g.call("sinusoidal", batch=batch, seq=seq, hidden=spec.hidden_size, dtype=dtype, offset=offset,
                    name="pos_table")  # fmt: skip
    else:
        return x
    return g.call("add", x, pe, name="embed_pos")


class _DropoutSites:
    """The spec's dropout when training with spec.dropout > 0 (else identity), each site with its own salt, all
    seeded by one scalar input `step` (ops/dropout.py). GPT-2's sites, all with the spec's one `dropout` p (GPT-2
    has embd_pdrop, resid_pdrop and attn_pdrop, all 0.1 in its configs, so one field says it): after the embedding,
    on each block's output before the residual add (`drop`), and on the attention probabilities inside the
    attention op (`attention`: a `step` input and dropout/seed/salt attributes, the op's backward drawing the same
    mask). Without dropout no site adds a node, an input or an attribute: the graph is the one of a spec without it."""

    def __init__(self, g: Graph, spec: ModelSpec, dtype: str, training: bool, seed: int):
        self.on = training and spec.dropout > 0
        self.p, self.seed = spec.dropout, seed
        self.step = g.input("step", (), dtype) if self.on else None
        # The attention sites count their salts from 2^30, so the residual sites keep the salts (and masks) they had
        # before attention dropout existed.
        self.g, self._salts, self._attn_salts = g, iter(range(1, 1 << 30)), iter(range(1 << 30, 1 << 31))

    def drop(self, x, name):
        if not self.on:
            return x
        return self.g.call("dropout", x, self.step, p=self.p, seed=self.seed, salt=next(self._salts), name=name)

    def attention(self) -> tuple[tuple, dict]:
        """(extra inputs, extra attributes) of one attention op: its probabilities' dropout."""
        if not self.on:
            return (), {}
        return (self.step,), {"dropout": self.p, "seed": self.seed, "salt": next(self._attn_salts)}


def param_component(name: str) -> str:
    """Which part of the model a parameter belongs to (for `tilegraph describe`)."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf in ("wq", "wk", "wv", "wo", "bq", "bk", "bv", "bo"):
        return "attention"
    if leaf in ("w1", "w2", "w3", "b1", "b2", "b3"):
        return "mlp"
    if leaf in ("router", "expert_w1", "expert_w2", "expert_w3"):
        return "experts"
    if leaf.removesuffix("_bias") in ("attn_norm", "mlp_norm", "final_norm"):
        return "norms"
    return {"tok_embedding": "embedding", "pos_embedding": "embedding", "lm_head": "lm_head"}[name]


def build(
    spec: ModelSpec | str, batch: int, seq: int, dtype: str = "float32", training: bool = False, dropout_seed: int = 0
) -> Graph:
    """The forward graph: inputs `tokens`, `targets` [B,S] int32 and the params; outputs `logits` and `loss`.

    dtype is the float type of params and activations: float32 to train, float64 for ground-truth checks.
    training=True adds the spec's dropout (with a scalar input `step` that seeds its masks, with dropout_seed): on
    the embedding, the residual branches and the attention probabilities (_DropoutSites).
    """
    spec = load_spec(spec)
    for what, n in (("batch", batch), ("seq", seq)):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
            raise ShapeError(f"{what} must be a positive integer, got {n!r}")
    if seq > spec.max_seq_len:
        raise ShapeError(
            f"seq {seq} is longer than max_seq_len {spec.max_seq_len} of spec {spec.name!r}; "
            f"use --seq <= {spec.max_seq_len} or raise max_seq_len in the spec"
        )
    nh, nkv, D = spec.num_heads, spec.num_kv_heads, spec.head_dim
    g = Graph(f"{spec.name}.forward")
    tokens = g.input("tokens", (batch, seq), "int32")
    targets = g.input("targets", (batch, seq), "int32")
    p = {name: g.param(name, shape, dtype) for name, shape in param_shapes(spec).items()}

    sites = _DropoutSites(g, spec, dtype, training, dropout_seed)
    drop = sites.drop
    x = g.call("embedding", p["tok_embedding"], tokens, name="embed")
    aux_losses: list = []  # MoE load-balancing losses, one per layer
    x = drop(_absolute_positions(g, spec, p, x, batch, seq, dtype), "embed_drop")
    for i in range(spec.num_layers):
        L = f"layers.{i}."
        h = _norm(g, spec, p, x, L + "attn_norm", L + "attn_in")
        q = _linear(g, spec, p, h, L + "wq", L + "q")
        k = _linear(g, spec, p, h, L + "wk", L + "k")
        v = _linear(g, spec, p, h, L + "wv", L + "v")
        if spec.positions == "rope":
            q = g.call("rope", q, heads=nh, base=spec.rope_base, name=L + "q_rope")
            k = g.call("rope", k, heads=nkv, base=spec.rope_base, name=L + "k_rope")
        attn_step, attn_drop = sites.attention()
        o, _lse = g.call(
            "attention", q, k, v, *attn_step, heads=nh, kv_heads=nkv, causal=True, scale=1.0 / math.sqrt(D),
            window=spec.attention_window, name=L + "attn", **({"alibi": True} if spec.positions == "alibi" else {}),
            **attn_drop,
        )
        x = g.call("add", x, drop(_linear(g, spec, p, o, L + "wo", L + "attn_out"), L + "attn_drop"),
                   name=L + "resid_attn")

        h = _norm(g, spec, p, x, L + "mlp_norm", L + "mlp_in")
        y = _moe_mlp(g, spec, p, L, h, aux_losses) if spec.moe is not None else _mlp(g, spec, p, h, L)
        x = g.call("add", x, drop(y, L + "mlp_drop"), name=L + "resid_mlp")

    h = _norm(g, spec, p, x, "final_norm", "final")
    if spec.tie_embeddings:
        logits = g.call("linear", h, p["tok_embedding"], transpose_w=True, name="logits")
    else:
        logits = g.call("linear", h, p["lm_head"], name="logits")
    loss = g.call("cross_entropy", logits, targets, name="loss")
    if aux_losses:
        loss = _add_aux_losses(g, loss, aux_losses)
    g.output("logits", logits)
    g.output("loss", loss)
    return g


def _moe_mlp(g: Graph, spec: ModelSpec, p: dict, L: str, h, aux_losses: list):
    """experts(h): router logits -> top-k gates (+ this layer's load-balancing loss) -> routed SwiGLU experts."""
    logits = g.call("linear", h, p[L + "router"], name=L + "router")
    gates, aux = g.call("moe_router", logits, top_k=spec.moe.top_k, aux_coef=spec.moe.aux_loss_coef,
                        name=L + "gates")
    aux_losses.append(aux)
    y = g.call("moe_experts", h, gates, p[L + "expert_w1"], p[L + "expert_w3"], p[L + "expert_w2"],
               top_k=spec.moe.top_k, name=L + "experts")
    return y


def _add_aux_losses(g: Graph, loss, aux_losses: list):
    """Training loss = cross-entropy + the sum of the layers' load-balancing losses (also output as `aux_loss`)."""
    total = aux_losses[0]
    for i, a in enumerate(aux_losses[1:]):
        total = g.call("add", total, a, name=f"aux_loss.{i}")
    g.output("aux_loss", total)
    g.output("cross_entropy", loss)
    return g.call("add", loss, total, name="loss_with_aux")


def init_params(spec: ModelSpec | str, seed: int = 0, dtype: str = "float32") -> dict[str, np.ndarray]:
    """GPT-2 style init: normal(0, 0.02); residual projections (wo, w2) scaled by 1/sqrt(2*layers); norm gains
    ones; biases (linear biases, LayerNorm betas) zeros."""
    spec = load_spec(spec)
    rng = np.random.default_rng(seed)
    resid_scale = 1.0 / math.sqrt(2 * spec.num_layers)
    params: dict[str, np.ndarray] = {}
    for name, shape in param_shapes(spec).items():
        if len(shape) == 1:
            is_bias = name.endswith("_bias") or name.rsplit(".", 1)[-1].startswith("b")
            params[name] = (np.zeros if is_bias else np.ones)(shape, dtype=dtype)
            continue
        std = 0.02 * (resid_scale if name.endswith((".wo", ".w2", ".expert_w2")) else 1.0)
        params[name] = (rng.standard_normal(shape) * std).astype(dtype)
    return params
