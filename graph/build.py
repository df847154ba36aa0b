"""spec -> forward Graph, and the parameter set it expects.

The block is the llama one: x + attn(rmsnorm(x)), then x + mlp(rmsnorm(x)); RoPE on q and k; causal attention with
an explicit 1/sqrt(head_dim) scale; SwiGLU emitted unfused (linear, linear, silu_mul, linear) so autodiff sees plain
ops (a fuse pass may rewrite it to `swiglu`); a final rmsnorm; logits against the tied embedding (or `lm_head`);
mean cross-entropy.
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
    for i in range(spec.num_layers):
        p = f"layers.{i}."
        shapes[p + "attn_norm"] = (H,)
        shapes[p + "wq"] = (H, nh * D)
        shapes[p + "wk"] = (H, nkv * D)
        shapes[p + "wv"] = (H, nkv * D)
        shapes[p + "wo"] = (nh * D, H)
        shapes[p + "mlp_norm"] = (H,)
        shapes[p + "w1"] = (H, F)
        shapes[p + "w3"] = (H, F)
        shapes[p + "w2"] = (F, H)
    shapes["final_norm"] = (H,)
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


def param_component(name: str) -> str:
    """Which part of the model a parameter belongs to (for `tilegraph describe`)."""
    leaf = name.rsplit(".", 1)[-1]
    if leaf in ("wq", "wk", "wv", "wo"):
        return "attention"
    if leaf in ("w1", "w2", "w3"):
        return "mlp"
    if leaf in ("router", "expert_w1", "expert_w2", "expert_w3"):
        return "experts"
    if leaf in ("attn_norm", "mlp_norm", "final_norm"):
        return "norms"
    return {"tok_embedding": "embedding", "lm_head": "lm_head"}[name]


def build(spec: ModelSpec | str, batch: int, seq: int, dtype: str = "float32") -> Graph:
    """The forward graph: inputs `tokens`, `targets` [B,S] int32 and the params; outputs `logits` and `loss`.

    dtype is the float type of params and activations: float32 to train, float64 for ground-truth checks.
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

    x = g.call("embedding", p["tok_embedding"], tokens, name="embed")
    aux_losses: list = []  # MoE load-balancing losses, one per layer
    for i in range(spec.num_layers):
        L = f"layers.{i}."
        h = g.call("rmsnorm", x, p[L + "attn_norm"], eps=spec.norm_eps, name=L + "attn_in")
        q = g.call("linear", h, p[L + "wq"], name=L + "q")
        k = g.call("linear", h, p[L + "wk"], name=L + "k")
        v = g.call("linear", h, p[L + "wv"], name=L + "v")
        q = g.call("rope", q, heads=nh, base=spec.rope_base, name=L + "q_rope")
        k = g.call("rope", k, heads=nkv, base=spec.rope_base, name=L + "k_rope")
        o, _lse = g.call(
            "attention", q, k, v, heads=nh, kv_heads=nkv, causal=True, scale=1.0 / math.sqrt(D),
            window=spec.attention_window, name=L + "attn"
        )
        x = g.call("add", x, g.call("linear", o, p[L + "wo"], name=L + "attn_out"), name=L + "resid_attn")

        h = g.call("rmsnorm", x, p[L + "mlp_norm"], eps=spec.norm_eps, name=L + "mlp_in")
        if spec.moe is not None:
            x = _moe_mlp(g, spec, p, L, x, h, aux_losses)
            continue
        gate = g.call("linear", h, p[L + "w1"], name=L + "gate")
        up = g.call("linear", h, p[L + "w3"], name=L + "up")
        act = g.call("silu_mul", gate, up, name=L + "swiglu")
        x = g.call("add", x, g.call("linear", act, p[L + "w2"], name=L + "mlp_out"), name=L + "resid_mlp")

    h = g.call("rmsnorm", x, p["final_norm"], eps=spec.norm_eps, name="final")
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


def _moe_mlp(g: Graph, spec: ModelSpec, p: dict, L: str, x, h, aux_losses: list):
    """x + experts(h): router logits -> top-k gates (+ this layer's load-balancing loss) -> routed SwiGLU experts."""
    logits = g.call("linear", h, p[L + "router"], name=L + "router")
    gates, aux = g.call("moe_router", logits, top_k=spec.moe.top_k, aux_coef=spec.moe.aux_loss_coef,
                        name=L + "gates")
    aux_losses.append(aux)
    y = g.call("moe_experts", h, gates, p[L + "expert_w1"], p[L + "expert_w3"], p[L + "expert_w2"],
               top_k=spec.moe.top_k, name=L + "experts")
    return g.call("add", x, y, name=L + "resid_mlp")


def _add_aux_losses(g: Graph, loss, aux_losses: list):
    """Training loss = cross-entropy + the sum of the layers' load-balancing losses (also output as `aux_loss`)."""
    total = aux_losses[0]
    for i, a in enumerate(aux_losses[1:]):
        total = g.call("add", total, a, name=f"aux_loss.{i}")
    g.output("aux_loss", total)
    g.output("cross_entropy", loss)
    return g.call("add", loss, total, name="loss_with_aux")


def init_params(spec: ModelSpec | str, seed: int = 0, dtype: str = "float32") -> dict[str, np.ndarray]:
    """GPT-2 style init: normal(0, 0.02); residual projections (wo, w2) scaled by 1/sqrt(2*layers); norms ones."""
    spec = load_spec(spec)
    rng = np.random.default_rng(seed)
    resid_scale = 1.0 / math.sqrt(2 * spec.num_layers)
    params: dict[str, np.ndarray] = {}
    for name, shape in param_shapes(spec).items():
        if len(shape) == 1:
            params[name] = np.ones(shape, dtype=dtype)
            continue
        std = 0.02 * (resid_scale if name.endswith((".wo", ".w2", ".expert_w2")) else 1.0)
        params[name] = (rng.standard_normal(shape) * std).astype(dtype)
    return params
