"""spec -> the inference graphs tt-metal's Llama runs: prefill and decode, with a KV cache per layer.

- prefill(spec, batch, seq): one forward over `seq` prompt tokens per user; every layer writes its keys and values
  into the KV cache (state `kv.<i>.k` / `kv.<i>.v` of [batch, seq, kv_heads*head_dim], updated in place); logits
  only for the last position ([batch, 1, vocab]), no loss.
- decode(spec, batch, context): one new token per user at position context-1; each layer writes that token's
  key and value into a cache of `context` positions and attends over the whole cache (attention_decode), so the
  attention cost follows the context. Logits [batch, 1, vocab].

The block is the one of graph/build.py (same parameter names and the same helpers for norms, biased linears, the
MLP kinds and MoE), so a trained checkpoint runs here unchanged and tests check that prefill's and decode's logits
equal the training forward's. Positions, every kind of the spec (each token at its position in the sequence:
prefill 0..seq-1, a prefill chunk start.., decode context-1): rope rotates q and k by it; learned and sinusoidal
add those rows of the table (the learned one has max_seq_len rows: a longer context is refused naming it); alibi
biases prefill's attention (the training op's `alibi`) and, in decode, the scores over the cache
(attention_decode's `alibi`: -slope_h times the query's position minus the cache position); none adds nothing.
A sliding window W keeps a rolling KV cache of W positions (as Mistral does): decode over a longer context reads the
W cached tokens, laid out oldest first (the new one in the last slot), and prefill (whole or in chunks over the
cache) attends within the window. The
cache slots then are not the positions: the tables and RoPE use the token's position (so keys cached by earlier
steps, each rotated by its own position, meet the query at their true distance) and ALiBi the slot distance, which
in that layout is the tokens' distance.
"""

from __future__ import annotations

import math

from tilegraph.graph.build import _absolute_positions, _linear, _mlp, _moe_mlp, _norm, param_shapes
from tilegraph.graph.ir import Graph, Value
from tilegraph.graph.spec import ModelSpec, load_spec

from tilegraph.errors import ShapeError

MODES = ("train", "prefill", "decode")


def _positive(what: str, n) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ShapeError(f"{what} must be a positive integer, got {n!r}")
    return n


def _block_stack(
    g: Graph, spec: ModelSpec, p: dict, x: Value, batch: int, positions: int, start: int, cache_len: int,
    position: int,
) -> Value:
    """The decoder layers over `positions` new tokens written at cache slots start.. of caches of cache_len; the
    first token's position in the sequence is `position` (RoPE rotates q and k by it, so keys cached in earlier
    steps, rotated by their own positions, meet the query at their true distance in a rolling cache too)."""
    nh, nkv, D = spec.num_heads, spec.num_kv_heads, spec.head_dim
    aux_losses: list = []  # MoE routing losses: not part of an inference step's outputs
    for i in range(spec.num_layers):
        L = f"layers.{i}."
        h = _norm(g, spec, p, x, L + "attn_norm", L + "attn_in")
        q = _linear(g, spec, p, h, L + "wq", L + "q")
        k = _linear(g, spec, p, h, L + "wk", L + "k")
        v = _linear(g, spec, p, h, L + "wv", L + "v")
        if spec.positions == "rope":
            q = g.call("rope", q, heads=nh, base=spec.rope_base, offset=position, name=L + "q_rope")
            k = g.call("rope", k, heads=nkv, base=spec.rope_base, offset=position, name=L + "k_rope")
        caches = []
        for what, new in (("k", k), ("v", v)):
            cache = g.state(f"kv.{i}.{what}", (batch, cache_len, nkv * D), x.type.dtype)
            written = g.call("kv_cache_write", cache, new, start=start, name=f"kv.{i}.{what}.write")
            g.updates[cache] = written
            caches.append(written)
        scale = 1.0 / math.sqrt(D)
        alibi = {"alibi": True} if spec.positions == "alibi" else {}  # (absent otherwise: graphs as before)
        if start == 0 and positions == cache_len:  # whole prefill: the prompt attends to itself (flash attention)
            o, _lse = g.call(
                "attention", q, k, v, heads=nh, kv_heads=nkv, causal=True, scale=scale,
                window=spec.attention_window, name=L + "attn", **alibi
            )
        else:
            o = g.call("attention_decode", q, *caches, heads=nh, kv_heads=nkv, scale=scale, start=start,
                       window=spec.attention_window, name=L + "attn", **alibi)  # fmt: skip
        x = g.call("add", x, _linear(g, spec, p, o, L + "wo", L + "attn_out"), name=L + "resid_attn")
        h = _norm(g, spec, p, x, L + "mlp_norm", L + "mlp_in")
        y = _moe_mlp(g, spec, p, L, h, aux_losses) if spec.moe is not None else _mlp(g, spec, p, h, L)
        x = g.call("add", x, y, name=L + "resid_mlp")
    return x


def _logits(g: Graph, spec: ModelSpec, p: dict, x: Value) -> Value:
    h = _norm(g, spec, p, x, "final_norm", "final")
    if spec.tie_embeddings:
        return g.call("linear", h, p["tok_embedding"], transpose_w=True, name="logits")
    return g.call("linear", h, p["lm_head"], name="logits")


def _graph(spec, batch: int, positions: int, start: int, dtype: str, mode: str, cache_len: int | None = None,
           position: int | None = None) -> Graph:
    """`positions` new tokens written at cache slot `start`..; `position` is the first one's position in the
    sequence (the absolute tables' row): `start` unless a rolling window cache has shifted the slots."""
    spec = load_spec(spec)
    cache_len = start + positions if cache_len is None else cache_len
    g = Graph(f"{spec.name}.{mode}")
    tokens = g.input("tokens", (batch, positions), "int32")
    p = {name: g.param(name, shape, dtype) for name, shape in param_shapes(spec).items()}
    x = g.call("embedding", p["tok_embedding"], tokens, name="embed")
    position = start if position is None else position
    x = _absolute_positions(g, spec, p, x, batch, positions, dtype, offset=position)
    x = _block_stack(g, spec, p, x, batch, positions, start, cache_len, position)
    if positions > 1:
        x = g.call("take_last", x, name="last_token")
    g.output("logits", _logits(g, spec, p, x))
    return g


def prefill(spec: ModelSpec | str, batch: int, seq: int, dtype: str = "float32") -> Graph:
    """One prefill step: `seq` prompt tokens per user -> KV caches written, last-token logits [batch, 1, vocab]."""
    spec = load_spec(spec)
    _positive("batch", batch), _positive("seq", seq)
    if seq > spec.max_seq_len:
        raise ShapeError(f"seq {seq} is longer than max_seq_len {spec.max_seq_len} of spec {spec.name!r}; "
                         f"use --seq <= {spec.max_seq_len}")  # fmt: skip
    return _graph(spec, batch, seq, 0, dtype, "prefill")


def prefill_chunk(spec: ModelSpec | str, batch: int, seq: int, chunk: int, start: int, dtype: str = "float32") -> Graph:
    """One chunk of a chunked prefill (what tt-metal does when a whole prompt's activations do not fit): `chunk`
    prompt tokens at positions start.. attend to the cache written so far and to themselves; caches of `seq`."""
    spec = load_spec(spec)
    _positive("chunk", chunk), _positive("seq", seq)
    if start < 0 or start + chunk > seq or seq > spec.max_seq_len:
        raise ShapeError(f"prefill chunk {start}..{start + chunk} must lie within seq {seq} <= max_seq_len "
                         f"{spec.max_seq_len}")  # fmt: skip
    return _graph(spec, batch, chunk, start, dtype, "prefill", cache_len=seq)


def decode(spec: ModelSpec | str, batch: int, context: int, dtype: str = "float32") -> Graph:
    """One decode step: one token per user at position context-1 over a KV cache of `context` positions."""
    spec = load_spec(spec)
    _positive("batch", batch), _positive("context", context)
    if context < 2:
        raise ShapeError(f"--context {context}: a decode step needs at least one cached token (context >= 2)")
    if context > spec.max_seq_len:
        table = " (the learned position table has max_seq_len rows)" if spec.positions == "learned" else ""
        raise ShapeError(f"--context {context} is longer than max_seq_len {spec.max_seq_len} of spec {spec.name!r}"
                         f"{table}; use --context <= {spec.max_seq_len}")  # fmt: skip
    cached = context
    if spec.attention_window is not None and context > spec.attention_window:
        cached = spec.attention_window  # the rolling cache holds the last W positions: that is what a step reads
    return _graph(spec, batch, 1, cached - 1, dtype, "decode", position=context - 1)
