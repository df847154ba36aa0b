"""One training step through the compiled Program equals a straightforward numpy implementation written here:
forward, backward by hand, global-norm clipping and AdamW (two steps, so moments and bias correction carry)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from tilegraph.graph import AdamWConfig, init_params, load_spec, training_step

from tilegraph.compiler import compile

SPEC = load_spec(Path(__file__).resolve().parent.parent / "specs" / "tiny-test.yaml")
B, S = 3, 9


# ---------------------------------------------------------------------------------------------------------------
# The independent implementation (float64, one function per piece, backward written out by hand)
# ---------------------------------------------------------------------------------------------------------------
def rmsnorm_fwd(x, g, eps):
    r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    return x * r * g, r


def rmsnorm_bwd(x, g, r, dy):
    xhat = x * r
    dg = np.sum(dy * xhat, axis=(0, 1))
    dxhat = dy * g
    dx = r * (dxhat - xhat * np.mean(dxhat * xhat, axis=-1, keepdims=True))
    return dx, dg


def rope_angles(seq, d, base):
    inv = base ** (-2.0 * np.arange(d // 2) / d)
    ang = np.arange(seq)[:, None] * inv[None, :]
    return np.cos(ang), np.sin(ang)


def rope(x, heads, base, sign=1.0):
    """Rotate pairs (j, j + D/2) of every head by sign * pos * base^(-2j/D); sign=-1 is the transpose."""
    b, s, hd = x.shape
    d = hd // heads
    cos, sin = rope_angles(s, d, base)
    sin = sign * sin
    xh = x.reshape(b, s, heads, d)
    x1, x2 = xh[..., : d // 2], xh[..., d // 2 :]
    c, sn = cos[None, :, None, :], sin[None, :, None, :]
    return np.concatenate([x1 * c - x2 * sn, x2 * c + x1 * sn], axis=-1).reshape(b, s, hd)


def heads_of(x, n):
    b, s, hd = x.shape
    return x.reshape(b, s, n, hd // n).transpose(0, 2, 1, 3)


def merge(x):
    b, n, s, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, s, n * d)


def attention_fwd(q, k, v, nh, nkv):
    group = nh // nkv
    qh, kh, vh = heads_of(q, nh), heads_of(k, nkv), heads_of(v, nkv)
    kh, vh = np.repeat(kh, group, axis=1), np.repeat(vh, group, axis=1)
    d = qh.shape[-1]
    s = q.shape[1]
    scores = qh @ kh.transpose(0, 1, 3, 2) / np.sqrt(d)
    scores = np.where(np.tril(np.ones((s, s), bool)), scores, -np.inf)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return merge(p @ vh), (qh, kh, vh, p)


def attention_bwd(do, cache, nh, nkv):
    qh, kh, vh, p = cache
    group = nh // nkv
    d = qh.shape[-1]
    doh = heads_of(do, nh)
    dv = p.transpose(0, 1, 3, 2) @ doh
    dp = doh @ vh.transpose(0, 1, 3, 2)
    ds = p * (dp - np.sum(dp * p, axis=-1, keepdims=True)) / np.sqrt(d)
    dq = ds @ kh
    dk = ds.transpose(0, 1, 3, 2) @ qh
    b, _, s, _ = qh.shape
    fold = lambda x: x.reshape(b, nkv, group, s, d).sum(axis=2)
    return merge(dq), merge(fold(dk)), merge(fold(dv))


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def loss_and_grads(spec, P, tokens, targets):
    nh, nkv, eps, base = spec.num_heads, spec.num_kv_heads, spec.norm_eps, spec.rope_base
    flat = lambda x: x.reshape(-1, x.shape[-1])
    x = P["tok_embedding"][tokens]
    caches = []
    for i in range(spec.num_layers):
        L = f"layers.{i}."
        h, r1 = rmsnorm_fwd(x, P[L + "attn_norm"], eps)
        q = rope(h @ P[L + "wq"], nh, base)
        k = rope(h @ P[L + "wk"], nkv, base)
        v = h @ P[L + "wv"]
        o, acache = attention_fwd(q, k, v, nh, nkv)
        x1 = x + o @ P[L + "wo"]
        h2, r2 = rmsnorm_fwd(x1, P[L + "mlp_norm"], eps)
        a, bb = h2 @ P[L + "w1"], h2 @ P[L + "w3"]
        m = a * sigmoid(a) * bb
        x2 = x1 + m @ P[L + "w2"]
        caches.append((x, h, r1, acache, o, x1, h2, r2, a, bb, m))
        x = x2
    hf, rf = rmsnorm_fwd(x, P["final_norm"], eps)
    logits = hf @ P["tok_embedding"].T
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    n = tokens.size
    loss = -np.mean(np.take_along_axis(logp, targets[..., None], -1))

    G = {k: np.zeros_like(v) for k, v in P.items()}
    dlogits = np.exp(logp)
    np.put_along_axis(dlogits, targets[..., None], np.take_along_axis(dlogits, targets[..., None], -1) - 1.0, -1)
    dlogits /= n
    G["tok_embedding"] += flat(dlogits).T @ flat(hf)  # output-projection use of the tied table
    dx, G["final_norm"] = rmsnorm_bwd(x, P["final_norm"], rf, dlogits @ P["tok_embedding"])
    for i in reversed(range(spec.num_layers)):
        L = f"layers.{i}."
        x0, h, r1, acache, o, x1, h2, r2, a, bb, m = caches[i]
        # mlp block: x2 = x1 + silu(h2 w1) * (h2 w3) @ w2
        G[L + "w2"] = flat(m).T @ flat(dx)
        dm = dx @ P[L + "w2"].T
        s = sigmoid(a)
        da = dm * bb * s * (1 + a * (1 - s))
        db = dm * a * s
        G[L + "w1"], G[L + "w3"] = flat(h2).T @ flat(da), flat(h2).T @ flat(db)
        dh2 = da @ P[L + "w1"].T + db @ P[L + "w3"].T
        dx1_norm, G[L + "mlp_norm"] = rmsnorm_bwd(x1, P[L + "mlp_norm"], r2, dh2)
        dx1 = dx + dx1_norm
        # attention block: x1 = x0 + attn(rope(h wq), rope(h wk), h wv) @ wo
        G[L + "wo"] = flat(o).T @ flat(dx1)
        dq, dk, dv = attention_bwd(dx1 @ P[L + "wo"].T, acache, nh, nkv)
        dq, dk = rope(dq, nh, base, -1.0), rope(dk, nkv, base, -1.0)
        G[L + "wq"], G[L + "wk"], G[L + "wv"] = (flat(h).T @ flat(d) for d in (dq, dk, dv))
        dh = dq @ P[L + "wq"].T + dk @ P[L + "wk"].T + dv @ P[L + "wv"].T
        dx0_norm, G[L + "attn_norm"] = rmsnorm_bwd(x0, P[L + "attn_norm"], r1, dh)
        dx = dx1 + dx0_norm
    np.add.at(G["tok_embedding"], tokens.ravel(), flat(dx))  # lookup use of the tied table
    return loss, G


def reference_step(spec, P, M, V, tokens, targets, lr, step, cfg):
    loss, G = loss_and_grads(spec, P, tokens, targets)
    norm = np.sqrt(sum(np.sum(g * g) for g in G.values()))
    clip = min(1.0, cfg.clip_norm / (norm + 1e-6))
    for k in P:
        g = G[k] * clip
        M[k] = cfg.beta1 * M[k] + (1 - cfg.beta1) * g
        V[k] = cfg.beta2 * V[k] + (1 - cfg.beta2) * g * g
        mhat, vhat = M[k] / (1 - cfg.beta1**step), V[k] / (1 - cfg.beta2**step)
        wd = cfg.weight_decay if P[k].ndim == 2 else 0.0
        P[k] = P[k] - lr * mhat / (np.sqrt(vhat) + cfg.eps) - lr * wd * P[k]
    return loss, norm, G


# ---------------------------------------------------------------------------------------------------------------
def _batch(seed):
    rng = np.random.default_rng(seed)
    toks = rng.integers(0, SPEC.vocab_size, (B, S + 1)).astype(np.int32)
    return toks[:, :-1].copy(), toks[:, 1:].copy()


@pytest.mark.parametrize("clip_norm", [1.0, 1e3])  # 1.0 clips (grad norm is > 1 here); 1e3 does not
def test_two_training_steps_match_reference(clip_norm):
    cfg = AdamWConfig(beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, clip_norm=clip_norm)
    params = {k: v * 5.0 if v.ndim == 2 else v for k, v in init_params(SPEC, seed=11, dtype="float64").items()}
    prog = compile(training_step(SPEC, B, S, cfg, dtype="float64", keep_grads=True))
    state = prog.init_state(params)
    P = {k: v.copy() for k, v in params.items()}
    M = {k: np.zeros_like(v) for k, v in P.items()}
    V = {k: np.zeros_like(v) for k, v in P.items()}
    norms = []
    for step, lr in ((1, 3e-2), (2, 1e-2)):
        tokens, targets = _batch(step)
        out = prog.run(state, {"tokens": tokens, "targets": targets, "lr": lr, "step": float(step)})
        loss, norm, G = reference_step(SPEC, P, M, V, tokens, targets, lr, step, cfg)
        norms.append(norm)
        # float64 throughout; the two sides differ only in summation order (~1e-15 relative per op, a few
        # hundred ops deep), so 1e-9 is loose for round-off and far below any real discrepancy.
        assert float(out["loss"]) == pytest.approx(loss, rel=1e-10)
        assert float(out["grad_norm"]) == pytest.approx(norm, rel=1e-9)
        for k, p_ref in P.items():
            np.testing.assert_allclose(out[f"grad:{k}"], G[k], rtol=1e-8, atol=1e-12, err_msg=f"grad {k}")
            np.testing.assert_allclose(state[k], p_ref, rtol=1e-9, atol=1e-12, err_msg=f"param {k}")
            np.testing.assert_allclose(state[f"m:{k}"], M[k], rtol=1e-8, atol=1e-13, err_msg=f"m {k}")
            np.testing.assert_allclose(state[f"v:{k}"], V[k], rtol=1e-8, atol=1e-15, err_msg=f"v {k}")
    assert (max(norms) > clip_norm) == (clip_norm == 1.0)  # the clipping branch under test was really taken


def test_float32_step_tracks_float64_reference():
    cfg = AdamWConfig()
    params = init_params(SPEC, seed=5)
    prog = compile(training_step(SPEC, B, S, cfg))
    state = prog.init_state(params)
    P = {k: v.astype(np.float64) for k, v in params.items()}
    M = {k: np.zeros_like(v) for k, v in P.items()}
    V = {k: np.zeros_like(v) for k, v in P.items()}
    tokens, targets = _batch(7)
    out = prog.run(state, {"tokens": tokens, "targets": targets, "lr": 1e-3, "step": 1.0})
    loss, norm, G = reference_step(SPEC, P, M, V, tokens, targets, 1e-3, 1, cfg)
    # float32 forward/backward: ~1e-7 relative per op over a 2-layer model, so 1e-5 relative on loss and norm.
    assert float(out["loss"]) == pytest.approx(loss, rel=1e-5)
    assert float(out["grad_norm"]) == pytest.approx(norm, rel=1e-4)
    # The first AdamW step moves each weight by lr * g / (|g| + eps) (about lr * sign(g)) plus the decay of 2-D
    # weights. Where |g| is well above float32 round-off of the gradients (1e-7 here) that step is the same to
    # ~1e-7 relative, so the change of every such element must match to 2e-7 absolute (5e-4 of lr; float32
    # parameters near 1 hold it to 1.2e-7): a wrong decay (norm gains decayed: 1e-4), a skipped element or a
    # wrong bias correction fails. Elements with tiny |g| may flip sign; they must still move by at most lr.
    for k, p_ref in P.items():
        got, want = state[k].astype(np.float64) - params[k], p_ref - params[k]
        sure = np.abs(G[k]) > 1e-7
        assert sure.mean() > 0.99, k
        np.testing.assert_allclose(got[sure], want[sure], rtol=0, atol=2e-7, err_msg=k)
        assert np.all(np.abs(got) <= 1e-3 * (1 + 1e-3) + 1e-4 * np.abs(params[k])), k


@pytest.mark.parametrize("seq", [64, 80])
def test_training_step_matches_reference_across_kernel_blocks(seq):
    """The causal mask across attention blocks: the fast path handles 32 query rows per block and the keys of
    earlier blocks; S=64 and 80 (a partial third block) check every block boundary against the hand-written
    model above (not derived from autodiff): loss and every gradient in float64."""
    rng = np.random.default_rng(seq)
    toks = rng.integers(0, SPEC.vocab_size, (1, seq + 1)).astype(np.int32)
    tokens, targets = toks[:, :-1].copy(), toks[:, 1:].copy()
    spec = replace(SPEC, max_seq_len=seq)
    params = init_params(spec, seed=13, dtype="float64")
    prog = compile(training_step(spec, 1, seq, AdamWConfig(), dtype="float64", keep_grads=True))
    out = prog.run(prog.init_state(params), {"tokens": tokens, "targets": targets, "lr": 0.0, "step": 1.0})
    loss, G = loss_and_grads(spec, {k: v.copy() for k, v in params.items()}, tokens, targets)
    assert float(out["loss"]) == pytest.approx(loss, rel=1e-10)
    for k in params:
        np.testing.assert_allclose(out[f"grad:{k}"], G[k], rtol=1e-8, atol=1e-12, err_msg=f"grad {k}")


def test_program_is_reusable_and_deterministic():
    # Buffers are reused across runs: running the same step twice from the same state gives identical results.
    prog = compile(training_step(replace(SPEC, num_layers=1), B, S))
    params = init_params(replace(SPEC, num_layers=1), seed=2)
    s1, s2 = prog.init_state(params), prog.init_state(params)
    tokens, targets = _batch(3)
    feeds = {"tokens": tokens, "targets": targets, "lr": 1e-2, "step": 1.0}
    a = prog.run(s1, feeds)
    prog.run(s1, {**feeds, "step": 2.0})  # perturb every buffer with another step
    b = prog.run(s2, feeds)
    assert float(a["loss"]) == float(b["loss"]) and float(a["grad_norm"]) == float(b["grad_norm"])
