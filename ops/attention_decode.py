"""attention_decode(q[B, T, heads*D], k_cache[B, C, kv*D], v_cache[B, C, kv*D]) {heads, kv_heads, scale, start,
alibi, window} -> o[B, T, heads*D].

Attention of T new query positions (decode: T = 1 per user) against a KV cache of C positions that already holds
their own keys and values (written by kv_cache_write). Query t sits at absolute position start + t and sees cache
positions 0..start+t (causal in absolute positions). Grouped-query: query head h reads KV head h // (heads/kv).
Its cost follows the context: it reads the whole cache once per step, as tt-metal's sdpa_decode does.
`alibi` adds the training attention's ALiBi bias -slope_h * (i - j) for query position i = start + t and cache
position j (ops/attention.py's slopes), so a decode step scores what the training forward scores; over the rolling
cache of a sliding window (graph/inference.py) the cache positions are the last W ones, oldest first, so i - j is
still the distance between the tokens. `window` W (None: unlimited) is the training attention's sliding window:
query position i sees cache positions i-W+1 .. i (a chunk of a chunked prefill over a cache longer than W; a decode
step over a rolling cache of W sees all of it).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from tilegraph.ops._util import expect_arity, expect_float, expect_rank, positive_int_attr
from tilegraph.ops.attention import _shard_heads, alibi_slopes, resolved_scale
from tilegraph.ops.base import Op, register
from tilegraph.ops.placement import Shard

from tilegraph.errors import ShapeError


def attention_decode_reference(q, kc, vc, heads: int, kv_heads: int, scale, start: int, alibi: bool = False,
                               window: int | None = None) -> np.ndarray:
    b, t, qd = q.shape
    d = qd // heads
    c = kc.shape[1]
    sc = resolved_scale({"scale": scale}, d)
    qh = q.reshape(b, t, heads, d).transpose(0, 2, 1, 3)  # [B, h, T, D]
    rep = heads // kv_heads
    kh = np.repeat(kc.reshape(b, c, kv_heads, d).transpose(0, 2, 1, 3), rep, axis=1)
    vh = np.repeat(vc.reshape(b, c, kv_heads, d).transpose(0, 2, 1, 3), rep, axis=1)
    scores = sc * (qh @ kh.transpose(0, 1, 3, 2))  # [B, h, T, C]
    dist = (start + np.arange(t))[:, None] - np.arange(c)[None, :]  # query position - cache position
    if alibi:  # float64 math rounded once to q's dtype, as ops/attention.py's alibi_bias
        scores = scores + (-alibi_slopes(heads)[:, None, None] * dist.astype(np.float64)).astype(scores.dtype)
    visible = (dist >= 0) & (dist < window) if window is not None else dist >= 0
    scores = np.where(visible, scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(axis=-1, keepdims=True)
    return (p @ vh).transpose(0, 2, 1, 3).reshape(b, t, qd).astype(q.dtype, copy=False)


@register
class AttentionDecode(Op):
    name = "attention_decode"
    attrs: ClassVar[dict] = {"heads": None, "kv_heads": None, "scale": None, "start": 0, "alibi": False,
                             "window": None}

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): as attention: query heads split (KV heads split when they
        divide, else a replicated cache read by strided query heads), or users split, which a cache split by users
        decides (the queries are then sliced locally)."""
        cache = placements[1]
        if isinstance(cache, Shard) and cache.dim == 0:  # users split (the 2-D layout's second axis)
            return [cache, cache, cache], [cache]
        q, kv = _shard_heads(node, placements, axis)
        return [q, kv, kv], [q]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, ["q", "k_cache", "v_cache"])
        q, kc, vc = inputs
        for what, t in (("q", q), ("k_cache", kc), ("v_cache", vc)):
            expect_float(self.name, what, t)
            expect_rank(self.name, what, t, 3, "[B, positions, heads*head_dim]")
        heads = positive_int_attr(self.name, attrs, "heads")
        kv = positive_int_attr(self.name, {"kv_heads": attrs["kv_heads"] or heads}, "kv_heads")
        if heads % kv or q.shape[2] % heads:
            raise ShapeError(
                f"op 'attention_decode': heads {heads}, kv_heads {kv} and q width {q.shape[2]} do not divide"
            )
        d = q.shape[2] // heads
        b, t, _ = q.shape
        want = (b, kc.shape[1], kv * d)
        if kc.shape != want or vc.shape != want:
            raise ShapeError(
                f"op 'attention_decode': caches {list(kc.shape)} / {list(vc.shape)} must be {list(want)} for q "
                f"{list(q.shape)} with heads={heads}, kv_heads={kv}"
            )
        start = attrs["start"]
        if isinstance(start, bool) or not isinstance(start, int) or start < 0 or start + t > kc.shape[1]:
            raise ShapeError(
                f"op 'attention_decode': start={start!r} with {t} query positions must lie within the cache of "
                f"{kc.shape[1]}"
            )
        window = attrs.get("window")
        if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 1):
            raise ShapeError(f"op 'attention_decode': window={window!r} must be a positive number of keys (or None)")
        return [q]

    def reference(self, inputs, attrs):
        heads = int(attrs["heads"])
        return [attention_decode_reference(*inputs, heads, int(attrs["kv_heads"] or heads), attrs["scale"],
                                           int(attrs["start"]), bool(attrs.get("alibi")),
                                           attrs.get("window"))]  # fmt: skip

    def flops(self, node):
        """q.k and p.v over the cache positions the queries see: start + t + 1 for query t (the whole cache for
        decode; a chunk of a chunked prefill sees what was written before it and the causal part of itself), at
        most W of them with a window."""
        b, t, qd = node.inputs[0].shape
        start, window = int(node.attrs["start"]), node.attrs.get("window")
        if window is None:
            return 4 * b * qd * (t * start + t * (t + 1) // 2)
        return 4 * b * qd * sum(min(start + i + 1, int(window)) for i in range(t))
