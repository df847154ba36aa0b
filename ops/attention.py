"""attention(q, k, v [, step]) {heads, kv_heads, causal, scale, window, alibi, dropout, seed, salt} -> (o, lse)  and
attention_bwd(q, k, v, o, lse, do [, step]) -> (dq, dk, dv).

Activations are [B, S, heads*D] (heads flattened into the last dim). Grouped-query attention: query head h reads
kv head h // (heads // kv_heads). `scale` multiplies q.k (None means 1/sqrt(D)). `lse` [B, heads, S] is the
log-sum-exp of each row of the scaled, masked scores, so the backward can rebuild P = exp(scale*q.k - lse)
without storing it (the FlashAttention-2 recipe):
    dV = P^T dO;  dP = dO V^T;  D = rowsum(dO * O);  dS = P * (dP - D);  dQ = scale * dS K;  dK = scale * dS^T Q
with dK, dV summed over the query heads that share a kv head. `window` W (causal only; None = unlimited) is
sliding-window attention: query i sees keys i-W+1 .. i.

`dropout` p > 0 is GPT-2's attn_pdrop, training graphs only: O = (M * P / (1-p)) V with M the keep mask of
ops/dropout.py (`keep_mask`, the one RNG of the project) drawn over [B, heads, S, S] from (seed, salt, step); the
scalar `step` then is a fourth input (and a seventh of attention_bwd), so the forward and the backward draw the same
mask from the same numbers and a resumed run draws the masks it would have drawn. lse stays that of the undropped
scores. The backward with a mask: dV = (M*P/(1-p))^T dO; dP = M * (dO V^T) / (1-p); D = rowsum(P * dP) (which
equals rowsum(dO * O) when O is the dropped output, the form FlashAttention-2's dropout backward and the C++
kernels use; the reference takes the rowsum(P * dP) form, which needs nothing but the mask); dS = P * (dP - D). With p = 0 the op has no `step`
input and the graph is the one without dropout. The C++ CPU kernels (kernels/cpu/attention.cpp, the numpy
backend's fast path) draw the same mask from the same key and the integer threshold ceil(p * 2^53)
(ops/dropout.py's mask_key and keep_threshold), so training with dropout keeps the fast path; the tt-metal kernels
(kernels/attention) draw none: their `refuses` says so and the place pass falls back to a ttnn composite / numpy.
"""

from __future__ import annotations

import math

import numpy as np
from tilegraph.ops import cpu_kernels
from tilegraph.ops._util import expect_arity, expect_float, expect_rank, expect_scalar, positive_int_attr
from tilegraph.ops.base import Op, TensorType, register
from tilegraph.ops.cpu_kernels import contiguous
from tilegraph.ops.dropout import dropout_probability, keep_mask, keep_threshold, mask_key
from tilegraph.ops.parallel import parallel_for
from tilegraph.ops.placement import P, R, Shard, no_partial

from tilegraph.errors import ShapeError, ShardingError


# ---------------------------------------------------------------------------------------------------------------
# Attributes and shape checks
# ---------------------------------------------------------------------------------------------------------------
def attention_dims(op: str, q: TensorType, k: TensorType, v: TensorType, attrs) -> tuple[int, int, int, int, int]:
    """(B, S, heads, kv_heads, head_dim) after checking every shape; raises ShapeError naming the fix."""
    for what, t in (("q", q), ("k", k), ("v", v)):
        expect_float(op, what, t)
        expect_rank(op, what, t, 3, "[B, S, heads*head_dim]")
    heads = positive_int_attr(op, attrs, "heads")
    kv_heads = attrs.get("kv_heads") or heads
    kv_heads = positive_int_attr(op, {"kv_heads": kv_heads}, "kv_heads")
    if heads % kv_heads:
        raise ShapeError(f"op {op!r}: kv_heads {kv_heads} must divide heads {heads}; pick a divisor of {heads}")
    b, s, qd = q.shape
    if qd % heads:
        raise ShapeError(f"op {op!r}: q last dim {qd} is not divisible by heads {heads}; fix heads or q")
    d = qd // heads
    want_kv = (b, s, kv_heads * d)
    for what, t in (("k", k), ("v", v)):
        if t.shape != want_kv:
            raise ShapeError(
                f"op {op!r}: {what} has shape {list(t.shape)} but q {list(q.shape)} with heads={heads}, "
                f"kv_heads={kv_heads} needs {list(want_kv)} (head_dim {d})"
            )
        if t.dtype != q.dtype:
            raise ShapeError(f"op {op!r}: q is {q.dtype} but {what} is {t.dtype}; give all the same dtype")
    window = attrs.get("window")
    if window is not None:
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise ShapeError(f"op {op!r}: window={window!r} must be a positive number of keys (or None for no window)")
        if not attrs.get("causal", True):
            raise ShapeError(f"op {op!r}: window={window} needs causal=True (a sliding window looks back only)")
    dropout_probability(op, {"dropout": 0.0, **attrs}, "dropout")
    scale = attrs.get("scale")
    if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale <= 0):
        raise ShapeError(f"op {op!r}: scale={scale!r} must be a positive number (or None for 1/sqrt(head_dim))")
    return b, s, heads, kv_heads, d


def resolved_scale(attrs, head_dim: int) -> float:
    s = attrs.get("scale")
    return 1.0 / math.sqrt(head_dim) if s is None else float(s)


# ---------------------------------------------------------------------------------------------------------------
# References (straightforward numpy; float64 capable)
# ---------------------------------------------------------------------------------------------------------------
def _split_heads(x: np.ndarray, n: int) -> np.ndarray:
    b, s, nd = x.shape
    return x.reshape(b, s, n, nd // n).transpose(0, 2, 1, 3)  # [B, n, S, D]


def _merge_heads(x: np.ndarray) -> np.ndarray:
    b, n, s, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, s, n * d)


def visible_mask(s: int, causal: bool, window: int | None = None) -> np.ndarray:
    """[S, S] bool: may query row i attend to key j (causal: j <= i; window W: also j > i - W)."""
    i, j = np.arange(s)[:, None], np.arange(s)[None, :]
    allowed = j <= i if causal else np.ones((s, s), bool)
    return allowed & (j > i - window) if window is not None else allowed


def attention_keep_mask(shape, dropout: float, seed: int, salt: int, step) -> np.ndarray | None:
    """[B, heads, S, S] bool keep mask of attention dropout (None when dropout is 0): ops/dropout.py's counter-based
    draw over the flattened probabilities, so it is a function of (seed, salt, step) alone."""
    if not dropout:
        return None
    return keep_mask(shape, float(dropout), int(seed), int(salt), int(np.asarray(step)))


def _dropped(p: np.ndarray, keep: np.ndarray | None, dropout: float) -> np.ndarray:
    """M * p / (1 - dropout) (p itself without dropout), in p's dtype."""
    return p if keep is None else np.where(keep, p / p.dtype.type(1.0 - dropout), p.dtype.type(0))


def _probabilities(qh, kh, lse, scale, causal, window=None, alibi=False):
    """P [B, nh, S, S] from q heads, k heads already expanded to nh heads, and lse [B, nh, S]."""
    scores = scale * (qh @ kh.transpose(0, 1, 3, 2))
    if alibi:
        scores = scores + alibi_bias(qh.shape[1], scores.shape[-1], scores.dtype)
    scores = np.where(visible_mask(scores.shape[-1], causal, window), scores, -np.inf)
    return np.exp(scores - lse[..., None])


def attention_reference(q, k, v, heads, kv_heads=None, causal=True, scale=None, window=None, alibi=False,
                        dropout=0.0, seed=0, salt=0, step=None):
    """(o [B,S,heads*D], lse [B,heads,S]) computed by an explicit masked softmax, in q's float dtype (with
    dropout > 0: of the dropped probabilities, the mask drawn from (seed, salt, step))."""
    kv_heads = kv_heads or heads
    group = heads // kv_heads
    d = q.shape[-1] // heads
    scale = resolved_scale({"scale": scale}, d)
    qh = _split_heads(q, heads)
    kh = np.repeat(_split_heads(k, kv_heads), group, axis=1)
    vh = np.repeat(_split_heads(v, kv_heads), group, axis=1)
    scores = scale * (qh @ kh.transpose(0, 1, 3, 2))
    if alibi:
        scores = scores + alibi_bias(heads, scores.shape[-1], scores.dtype)
    scores = np.where(visible_mask(scores.shape[-1], causal, window), scores, -np.inf)
    row_max = scores.max(axis=-1, keepdims=True)
    lse = (row_max + np.log(np.exp(scores - row_max).sum(axis=-1, keepdims=True)))[..., 0]
    p = np.exp(scores - lse[..., None])
    keep = attention_keep_mask(p.shape, dropout, seed, salt, step)
    o = _merge_heads(_dropped(p, keep, dropout) @ vh)
    return o.astype(q.dtype, copy=False), lse.astype(q.dtype, copy=False)


def attention_bwd_reference(q, k, v, o, lse, do, heads, kv_heads=None, causal=True, scale=None, window=None,
                            alibi=False, dropout=0.0, seed=0, salt=0, step=None):
    """(dq, dk, dv) by the FlashAttention-2 backward formulas, with P rebuilt from lse (and, with dropout, the
    forward's mask drawn again from the same (seed, salt, step))."""
    kv_heads = kv_heads or heads
    group = heads // kv_heads
    b, s, _ = q.shape
    d = q.shape[-1] // heads
    scale = resolved_scale({"scale": scale}, d)
    qh = _split_heads(q, heads)
    kh = np.repeat(_split_heads(k, kv_heads), group, axis=1)
    vh = np.repeat(_split_heads(v, kv_heads), group, axis=1)
    oh, doh = _split_heads(o, heads), _split_heads(do, heads)
    p = _probabilities(qh, kh, lse.astype(q.dtype, copy=False), scale, causal, window, alibi)
    keep = attention_keep_mask(p.shape, dropout, seed, salt, step)
    dv_h = _dropped(p, keep, dropout).transpose(0, 1, 3, 2) @ doh
    dp = _dropped(doh @ vh.transpose(0, 1, 3, 2), keep, dropout)  # the gradient of P itself, through the mask
    # D = rowsum(P * dP). With a mask it equals rowsum(dO * O) only for the dropped O the forward returned; the
    # reference uses the form that needs no O (the C++ kernels use rowsum(dO * O) and match it: tests).
    delta = (doh * oh).sum(axis=-1, keepdims=True) if keep is None else (p * dp).sum(axis=-1, keepdims=True)
    ds = p * (dp - delta)
    dq_h = scale * (ds @ kh)
    dk_h = scale * (ds.transpose(0, 1, 3, 2) @ qh)

    def fold_groups(x):  # [B, nh, S, D] -> [B, nkv, S, D], summing query heads that share a kv head
        return x.reshape(b, kv_heads, group, s, d).sum(axis=2)

    return _merge_heads(dq_h), _merge_heads(fold_groups(dk_h)), _merge_heads(fold_groups(dv_h))


# ---------------------------------------------------------------------------------------------------------------
# Op definitions
# ---------------------------------------------------------------------------------------------------------------
_ATTRS = {"heads": None, "kv_heads": None, "causal": True, "scale": None, "window": None, "alibi": False,
          "dropout": 0.0, "seed": 0, "salt": 0}


# -- issue 14 (arch-a): ALiBi, a per-head linear distance penalty added to the scores ------------------------------
def alibi_slopes(heads: int) -> np.ndarray:
    """Press et al.'s head slopes: 2^(-8(h+1)/n) for n = heads a power of two; otherwise those of the next lower
    power of two, then every other slope of the next higher one (their reference implementation's rule)."""
    def pow2(n):
        return 2.0 ** (-8.0 * np.arange(1, n + 1) / n)

    n = 1 << (heads.bit_length() - 1)
    slopes = pow2(n)
    if n < heads:
        slopes = np.concatenate([slopes, pow2(2 * n)[0::2][: heads - n]])
    return slopes


def alibi_bias(heads: int, seq: int, dtype) -> np.ndarray:
    """[heads, S, S]: -slope_h * |i - j| (query i, key j), float64 math rounded once to dtype."""
    dist = np.abs(np.arange(seq)[:, None] - np.arange(seq)[None, :]).astype(np.float64)
    return (-alibi_slopes(heads)[:, None, None] * dist).astype(dtype)


def _ref_kwargs(attrs) -> dict:
    """The reference's keyword arguments (the dropout ones only with dropout > 0; the caller adds `step`)."""
    drop = float(attrs.get("dropout") or 0.0)
    return {
        "heads": int(attrs["heads"]),
        "kv_heads": int(attrs["kv_heads"] or attrs["heads"]),
        "causal": bool(attrs["causal"]),
        "scale": attrs["scale"],
        "window": None if attrs.get("window") is None else int(attrs["window"]),
        "alibi": bool(attrs.get("alibi")),
        **({"dropout": drop, "seed": int(attrs["seed"]), "salt": int(attrs["salt"])} if drop else {}),
    }


def input_names(base: list[str], attrs) -> list[str]:
    """The op's inputs: `base`, then the scalar `step` that seeds the dropout mask when dropout > 0."""
    return [*base, "step"] if attrs.get("dropout") else base


def _split_step(inputs, attrs) -> tuple[list, dict]:
    """(the tensor inputs, the reference kwargs with `step` when the op has one)."""
    kw = _ref_kwargs(attrs)
    if attrs.get("dropout"):
        inputs, kw["step"] = list(inputs[:-1]), inputs[-1]
    return list(inputs), kw


def _visible_pairs(s, causal, window=None) -> int:
    """(query, key) pairs a head computes: about half of S x S when causal; about S*W with a window W."""
    if window is not None and window < s:
        return s * window - window * (window - 1) // 2
    return s * s // 2 if causal else s * s


def _score_flops(b, s, heads, d, causal, window=None) -> int:
    # Two S x S x D matmuls per head (QK^T and PV) over the visible (query, key) pairs.
    return 2 * 2 * b * heads * d * _visible_pairs(s, causal, window)


def _dropout_flops(node, per_pair: int) -> int:
    """Attention dropout is elementwise over the visible probabilities: drawing the mask (a hash) and scaling,
    counted as `per_pair` operations per pair (small next to the 4*D of the matmuls)."""
    if not node.attrs.get("dropout"):
        return 0
    b, s, _ = node.inputs[0].shape
    return per_pair * b * int(node.attrs["heads"]) * _visible_pairs(s, bool(node.attrs["causal"]), node.attrs["window"])


def _shard_heads(node, placements, axis):
    """(q, k/v) placements of attention / attention_bwd on one mesh axis (ops/placement.py): split batch passes;
    split query heads use split KV heads when KV heads divide evenly, else replicated K/V, which needs the query
    heads of every device to map onto the KV heads in GQA order (the shard pass deals them out strided)."""
    q = no_partial(placements[0])
    if node.attrs.get("dropout"):
        return R, R  # the dropout mask is drawn by global (batch, head, query, key) index: computed whole
    if isinstance(q, Shard) and q.dim == 0:
        return q, q
    if not (isinstance(q, Shard) and q.dim == 2) or node.attrs.get("alibi"):
        return R, R  # (ALiBi: each head's slope depends on its global index, which a local head count loses)
    nh, nkv = int(node.attrs["heads"]), int(node.attrs["kv_heads"])
    if q.order is None and nkv % axis.size == 0:
        return q, Shard(2)
    order = q.order or tuple(range(nh))
    per_dev, group = nh // axis.size, nh // nkv
    ok = per_dev % nkv == 0 and all(
        order[d * per_dev + i] // group == i // (per_dev // nkv) for d in range(axis.size) for i in range(per_dev)
    )
    if not ok:
        raise ShardingError(
            f"op {node.op!r}: query heads split {nh}/{axis.size} cannot use {nkv} replicated KV heads in GQA order"
        )
    return q, R


@register
class Attention(Op):
    name = "attention"
    attrs = _ATTRS

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): heads (or batch) split; lse follows q's heads."""
        q, kv = _shard_heads(node, placements, axis)
        lse = Shard(1, q.order) if isinstance(q, Shard) and q.dim == 2 else q
        return [q, kv, kv, *([R] if node.attrs.get("dropout") else [])], [q, lse]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, input_names(["q", "k", "v"], attrs))
        q, k, v = inputs[:3]
        b, s, heads, _, _ = attention_dims(self.name, q, k, v, attrs)
        if attrs.get("dropout"):
            expect_scalar(self.name, "step", inputs[3])
        return [q, TensorType((b, heads, s), q.dtype)]

    def reference(self, inputs, attrs):
        tensors, kw = _split_step(inputs, attrs)
        return list(attention_reference(*tensors, **kw))

    def numpy_into(self, inputs, outputs, attrs):
        tensors, kw = _split_step(inputs, attrs)
        if kw["alibi"]:  # the C++ kernel adds no position bias: the numpy reference (S x S scores per head)
            for out, res in zip(outputs, attention_reference(*tensors, **kw)):
                out[...] = res
            return
        kw.pop("alibi")
        kw["scale"] = resolved_scale(attrs, tensors[0].shape[-1] // kw["heads"])
        attention_numpy_forward(*tensors, *outputs, **kw)

    def backward(self, g, node, grads):
        do, dlse = grads
        if dlse is not None:
            raise ShapeError(
                "op 'attention': a gradient flows into lse, which attention_bwd does not support; "
                "use only the output o downstream"
            )
        if do is None:
            return [None, None, None]
        q, k, v, *step = node.inputs  # (step: the dropout seed counter, which has no gradient)
        o, lse = node.outputs
        dq, dk, dv = g.call("attention_bwd", q, k, v, o, lse, do, *step, **dict(node.attrs))
        return [dq, dk, dv, *([None] if step else [])]

    def flops(self, node):
        q, k, v = (t.type for t in node.inputs[:3])
        b, s, heads, _, d = attention_dims(self.name, q, k, v, node.attrs)
        # dropout: hash, compare and scale per probability
        return _score_flops(b, s, heads, d, bool(node.attrs["causal"]), node.attrs["window"]) + _dropout_flops(node, 3)


@register
class AttentionBwd(Op):
    name = "attention_bwd"
    attrs = _ATTRS

    def shard(self, node, placements, axis):
        """Sharding on one mesh axis (ops/placement.py): as attention; with replicated K/V and split query heads
        each device's dK/dV hold only its heads' contributions: partial sums."""
        q, kv = _shard_heads(node, placements, axis)
        lse = Shard(1, q.order) if isinstance(q, Shard) and q.dim == 2 else q
        dkv = P if (kv == R and q != R) else kv
        return [q, kv, kv, q, lse, q, *([R] if node.attrs.get("dropout") else [])], [q, dkv, dkv]

    def infer(self, inputs, attrs):
        expect_arity(self.name, inputs, input_names(["q", "k", "v", "o", "lse", "do"], attrs))
        q, k, v, o, lse, do = inputs[:6]
        b, s, heads, _, _ = attention_dims(self.name, q, k, v, attrs)
        if attrs.get("dropout"):
            expect_scalar(self.name, "step", inputs[6])
        for what, t in (("o", o), ("do", do)):
            if t.shape != q.shape:
                raise ShapeError(f"op 'attention_bwd': {what} {list(t.shape)} must have q's shape {list(q.shape)}")
        if lse.shape != (b, heads, s):
            raise ShapeError(f"op 'attention_bwd': lse {list(lse.shape)} must be [B, heads, S] = {[b, heads, s]}")
        return [q, k, v]

    def reference(self, inputs, attrs):
        tensors, kw = _split_step(inputs, attrs)
        return list(attention_bwd_reference(*tensors, **kw))

    def numpy_into(self, inputs, outputs, attrs):
        tensors, kw = _split_step(inputs, attrs)
        if kw["alibi"]:  # as the forward: the numpy reference
            for out, res in zip(outputs, attention_bwd_reference(*tensors, **kw)):
                out[...] = res
            return
        kw.pop("alibi")
        kw["scale"] = resolved_scale(attrs, tensors[0].shape[-1] // kw["heads"])
        attention_numpy_backward(*tensors, *outputs, **kw)

    def flops(self, node):
        q, k, v = (t.type for t in node.inputs[:3])
        b, s, heads, _, d = attention_dims(self.name, q, k, v, node.attrs)
        # Recompute QK^T, then dV, dP, dQ, dK: five S x S x D matmuls; dropout: the mask drawn again, applied to
        # P (for dV) and to dP, and the rowsum(P * dP) term.
        return (_score_flops(b, s, heads, d, bool(node.attrs["causal"]), node.attrs["window"]) * 5 // 2
                + _dropout_flops(node, 6))


# ---------------------------------------------------------------------------------------------------------------
# Fast path (float32 training, float64 checks): the CPU kernels in kernels/cpu/attention.cpp, one work item per
# (batch element, kv head), the items handed out to the ops.parallel workers. The kernel keeps every S x S block
# in cache (scores, exp, masking and the products of one block of query rows together) and skips the blocks
# above the causal diagonal.
# ---------------------------------------------------------------------------------------------------------------
def _drop_args(dropout, seed, salt, step) -> tuple[int, int, float]:
    """(key, threshold, 1/(1-p)) of the kernels' dropout mask (ops/dropout.py's draw; threshold 0 = no dropout).
    The key goes to C as int64 bits."""
    if not dropout:
        return 0, 0, 1.0
    key = int(mask_key(int(seed), int(salt), int(np.asarray(step))))
    return key - (1 << 64) if key >= 1 << 63 else key, keep_threshold(float(dropout)), 1.0 / (1.0 - float(dropout))


def attention_numpy_forward(q, k, v, o, lse, heads, kv_heads, causal, scale, window=None, dropout=0.0, seed=0,
                            salt=0, step=None):
    contiguous("attention", q=q, k=k, v=v, o=o, lse=lse)
    kernel = cpu_kernels.kernel("attention_fwd", q.dtype)
    b, s, _ = q.shape
    d = q.shape[-1] // heads
    ptrs = [a.ctypes.data for a in (q, k, v, o, lse)]
    key, threshold, keep_scale = _drop_args(dropout, seed, salt, step)

    def items(i0, i1, _):
        kernel(*ptrs, s, heads, kv_heads, d, scale, causal, window or 0, key, threshold, keep_scale, i0, i1)

    parallel_for(b * kv_heads, items)


def attention_numpy_backward(q, k, v, o, lse, do, dq, dk, dv, heads, kv_heads, causal, scale, window=None,
                             dropout=0.0, seed=0, salt=0, step=None):
    contiguous("attention_bwd", q=q, k=k, v=v, o=o, lse=lse, do=do, dq=dq, dk=dk, dv=dv)
    kernel = cpu_kernels.kernel("attention_bwd", q.dtype)
    b, s, _ = q.shape
    d = q.shape[-1] // heads
    ptrs = [a.ctypes.data for a in (q, k, v, o, lse, do, dq, dk, dv)]
    key, threshold, keep_scale = _drop_args(dropout, seed, salt, step)

    def items(i0, i1, _):
        kernel(*ptrs, s, heads, kv_heads, d, scale, causal, window or 0, key, threshold, keep_scale, i0, i1)

    parallel_for(b * kv_heads, items)
