"""Op references against independent, straightforward formulas (loops, textbook definitions), in float32 and
float64, plus shape/dtype inference errors that name the op and the fix."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tilegraph.graph import Graph
from tilegraph.ops import REGISTRY, get_op
from tilegraph.ops.base import Op, TensorType

from tilegraph.errors import ShapeError

SETTINGS = settings(deadline=None, max_examples=15, derandomize=True)
seeds = st.integers(0, 2**31 - 1)
dtypes = st.sampled_from([np.float32, np.float64])

# Tolerances of a reference against a loop formula: both compute in the same dtype but in a different order.
# float64: 1e-12 relative (a handful of roundings of 1e-16 each, amplified by short sums).
# float32: 1e-5 relative (eps 6e-8 per rounding; sums over up to ~50 terms and exp/log add a few ulps each).
TOL = {np.float32: {"rtol": 1e-5, "atol": 1e-5}, np.float64: {"rtol": 1e-12, "atol": 1e-12}}


def run(op, inputs, **attrs):
    opdef = get_op(op)
    full = {**opdef.attrs, **attrs}
    types = opdef.infer([TensorType(a.shape, str(a.dtype)) for a in inputs], full)
    outs = opdef.reference(inputs, full)
    for t, o in zip(types, outs):
        assert o.shape == t.shape and str(o.dtype) == t.dtype, (op, o.shape, o.dtype, t)
    return outs


# --- attention --------------------------------------------------------------------------------------------
def attention_loops(q, k, v, heads, kv_heads, causal, scale):
    """One (batch, head, query) at a time: explicit masked softmax over keys, in float64."""
    b, s, _ = q.shape
    d = q.shape[-1] // heads
    group = heads // kv_heads
    o = np.zeros((b, s, heads * d))
    lse = np.zeros((b, heads, s))
    for bi in range(b):
        for h in range(heads):
            kvh = h // group
            qh = q[bi, :, h * d : (h + 1) * d].astype(np.float64)
            kh = k[bi, :, kvh * d : (kvh + 1) * d].astype(np.float64)
            vh = v[bi, :, kvh * d : (kvh + 1) * d].astype(np.float64)
            for i in range(s):
                keys = range(i + 1) if causal else range(s)
                logits = np.array([scale * qh[i] @ kh[j] for j in keys])
                lse[bi, h, i] = math.log(sum(math.exp(x) for x in logits))
                weights = np.exp(logits - lse[bi, h, i])
                o[bi, i, h * d : (h + 1) * d] = sum(w * vh[j] for w, j in zip(weights, keys))
    return o, lse


@SETTINGS
@given(
    seed=seeds,
    dtype=dtypes,
    b=st.integers(1, 2),
    s=st.integers(1, 9),
    kv_heads=st.integers(1, 3),
    group=st.integers(1, 3),
    d=st.sampled_from([1, 2, 4]),
    causal=st.booleans(),
    scale=st.sampled_from([None, 0.5, 2.0]),
)
def test_attention_matches_explicit_softmax(seed, dtype, b, s, kv_heads, group, d, causal, scale):
    rng = np.random.default_rng(seed)
    heads = kv_heads * group
    q = rng.standard_normal((b, s, heads * d)).astype(dtype)
    k = rng.standard_normal((b, s, kv_heads * d)).astype(dtype)
    v = rng.standard_normal((b, s, kv_heads * d)).astype(dtype)
    o, lse = run("attention", [q, k, v], heads=heads, kv_heads=kv_heads, causal=causal, scale=scale)
    o_ref, lse_ref = attention_loops(q, k, v, heads, kv_heads, causal, 1 / math.sqrt(d) if scale is None else scale)
    np.testing.assert_allclose(o, o_ref, **TOL[dtype])
    np.testing.assert_allclose(lse, lse_ref, **TOL[dtype])


def test_attention_first_causal_row_copies_v_and_long_rows_are_stable():
    rng = np.random.default_rng(1)
    q = 50 * rng.standard_normal((1, 300, 8))  # large scores: exp would overflow without max-subtraction
    k = 50 * rng.standard_normal((1, 300, 4))
    v = rng.standard_normal((1, 300, 4))
    o, lse = run("attention", [q, k, v], heads=2, kv_heads=1, causal=True, scale=1.0)
    assert np.all(np.isfinite(o)) and np.all(np.isfinite(lse))
    np.testing.assert_allclose(o[0, 0, :4], v[0, 0], rtol=1e-12)  # row 0 sees only key 0
    np.testing.assert_allclose(o[0, 0, 4:], v[0, 0], rtol=1e-12)


# --- rope ---------------------------------------------------------------------------------------------------
@SETTINGS
@given(seed=seeds, dtype=dtypes, b=st.integers(1, 2), s=st.integers(1, 40), heads=st.integers(1, 3),
       half=st.integers(1, 8))
def test_rope_is_a_complex_rotation_and_inverse_undoes_it(seed, dtype, b, s, heads, half):
    rng = np.random.default_rng(seed)
    d = 2 * half
    x = rng.standard_normal((b, s, heads * d)).astype(dtype)
    (y,) = run("rope", [x], heads=heads, base=10000.0)
    # Independent formula: (x_j + i x_{j+D/2}) * exp(i * pos * base^(-2j/D)).
    xh = x.astype(np.float64).reshape(b, s, heads, d)
    z = xh[..., :half] + 1j * xh[..., half:]
    angle = np.arange(s)[:, None] * 10000.0 ** (-2.0 * np.arange(half) / d)
    zr = z * np.exp(1j * angle)[None, :, None, :]
    expect = np.concatenate([zr.real, zr.imag], axis=-1).reshape(b, s, heads * d)
    np.testing.assert_allclose(y, expect, **TOL[dtype])
    (back,) = run("rope", [y], heads=heads, base=10000.0, inverse=True)
    np.testing.assert_allclose(back, x, **TOL[dtype])
    np.testing.assert_array_equal(y[:, 0], x[:, 0])  # position 0 is not rotated


# --- cross entropy ------------------------------------------------------------------------------------------
@SETTINGS
@given(seed=seeds, dtype=dtypes, b=st.integers(1, 3), s=st.integers(1, 7), vocab=st.integers(1, 12))
def test_cross_entropy_matches_per_token_log_softmax(seed, dtype, b, s, vocab):
    rng = np.random.default_rng(seed)
    logits = (3 * rng.standard_normal((b, s, vocab))).astype(dtype)
    targets = rng.integers(0, vocab, (b, s)).astype(np.int32)
    (loss,) = run("cross_entropy", [logits, targets])
    total = 0.0
    for i in range(b):
        for j in range(s):
            row = logits[i, j].astype(np.float64)
            total += math.log(sum(math.exp(x) for x in row)) - row[targets[i, j]]
    np.testing.assert_allclose(loss, total / (b * s), **TOL[dtype])
    # Gradient: softmax minus one-hot, divided by the token count, times the incoming scalar.
    (dlogits,) = run("cross_entropy_bwd", [logits, targets, np.asarray(2.0, dtype)])
    p = np.exp(logits.astype(np.float64))
    p /= p.sum(-1, keepdims=True)
    p[np.arange(b)[:, None], np.arange(s)[None, :], targets] -= 1
    np.testing.assert_allclose(dlogits, 2.0 * p / (b * s), **TOL[dtype])


def test_cross_entropy_of_uniform_logits_is_log_vocab():
    (loss,) = run("cross_entropy", [np.zeros((2, 3, 7)), np.zeros((2, 3), np.int32)])
    assert loss == pytest.approx(math.log(7), rel=1e-14)


# --- rmsnorm, silu_mul, embedding, linear ----------------------------------------------------------------
@SETTINGS
@given(seed=seeds, dtype=dtypes, rows=st.integers(1, 6), h=st.integers(1, 16))
def test_rmsnorm_matches_row_loop(seed, dtype, rows, h):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, h)).astype(dtype)
    gamma = rng.standard_normal(h).astype(dtype)
    (y,) = run("rmsnorm", [x, gamma], eps=1e-5)
    for r in range(rows):
        row = [float(v) for v in x[r]]
        inv = 1 / math.sqrt(sum(v * v for v in row) / h + 1e-5)
        np.testing.assert_allclose(y[r], [v * inv * float(g) for v, g in zip(row, gamma)], **TOL[dtype])


@SETTINGS
@given(seed=seeds, dtype=dtypes, n=st.integers(1, 20))
def test_silu_mul_matches_formula(seed, dtype, n):
    rng = np.random.default_rng(seed)
    a, b = (5 * rng.standard_normal(n)).astype(dtype), rng.standard_normal(n).astype(dtype)
    (y,) = run("silu_mul", [a, b])
    np.testing.assert_allclose(y, [float(x) / (1 + math.exp(-float(x))) * float(z) for x, z in zip(a, b)],
                               **TOL[dtype])


def test_silu_mul_saturates_without_nan():
    a = np.array([-1000.0, 1000.0], np.float32)
    (y,) = run("silu_mul", [a, np.ones(2, np.float32)])
    np.testing.assert_array_equal(y, [0.0, 1000.0])


@SETTINGS
@given(seed=seeds, b=st.integers(1, 3), s=st.integers(1, 6), vocab=st.integers(1, 5), h=st.integers(1, 4))
def test_embedding_and_its_scatter_add(seed, b, s, vocab, h):
    rng = np.random.default_rng(seed)
    table = rng.standard_normal((vocab, h))
    ids = rng.integers(0, vocab, (b, s)).astype(np.int32)
    (y,) = run("embedding", [table, ids])
    dy = rng.standard_normal((b, s, h))
    (dtable,) = run("embedding_bwd", [ids, dy], vocab=vocab)
    expect = np.zeros((vocab, h))
    for i in range(b):
        for j in range(s):
            np.testing.assert_array_equal(y[i, j], table[ids[i, j]])
            expect[ids[i, j]] += dy[i, j]
    np.testing.assert_allclose(dtable, expect, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(seed=seeds, dtype=dtypes, lead=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       k=st.integers(1, 6), n=st.integers(1, 6), transpose=st.booleans())
def test_linear_and_wgrad_match_einsum(seed, dtype, lead, k, n, transpose):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((*lead, k)).astype(dtype)
    w = rng.standard_normal((n, k) if transpose else (k, n)).astype(dtype)
    (y,) = run("linear", [x, w], transpose_w=transpose)
    expect_y = np.einsum("...k,nk->...n" if transpose else "...k,kn->...n", x.astype(np.float64), w.astype(np.float64))
    np.testing.assert_allclose(y, expect_y, **TOL[dtype])
    dy = rng.standard_normal((*lead, n)).astype(dtype)
    (dw,) = run("linear_wgrad", [x, dy], transpose_w=transpose)
    expect = np.einsum("mk,mn->kn", x.reshape(-1, k).astype(np.float64), dy.reshape(-1, n).astype(np.float64))
    np.testing.assert_allclose(dw, expect.T if transpose else expect, **TOL[dtype])


# --- optimizer ----------------------------------------------------------------------------------------------
def test_global_norm_and_clip_scale():
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(5), np.asarray(2.0)]
    (norm,) = run("global_norm", grads)
    assert float(norm) == pytest.approx(np.linalg.norm(np.concatenate([g.ravel() for g in grads])), rel=1e-13)
    (c,) = run("clip_scale", [np.asarray(4.0)], max_norm=1.0)
    assert float(c) == pytest.approx(1.0 / (4.0 + 1e-6), rel=1e-14)
    (c,) = run("clip_scale", [np.asarray(0.5)], max_norm=1.0)
    assert float(c) == 1.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adamw_matches_scalar_loop_over_steps(dtype):
    """Three steps of adamw against a per-element loop in the PyTorch order (decay first, then the Adam step)."""
    rng = np.random.default_rng(3)
    p = rng.standard_normal(6).astype(dtype)
    m, v = np.zeros(6, dtype), np.zeros(6, dtype)
    hp = {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1}
    pl, ml, vl = [float(x) for x in p], [0.0] * 6, [0.0] * 6
    for step in (1, 2, 3):
        grad = rng.standard_normal(6).astype(dtype)
        lr, scale = 1e-2, 0.5
        p, m, v = run("adamw", [p, grad, m, v, np.asarray(lr, dtype), np.asarray(step, dtype),
                                np.asarray(scale, dtype)], **hp)
        for i in range(6):
            gi = float(grad[i]) * scale
            ml[i] = 0.9 * ml[i] + 0.1 * gi
            vl[i] = 0.95 * vl[i] + 0.05 * gi * gi
            pl[i] *= 1 - lr * 0.1
            denom = math.sqrt(vl[i]) / math.sqrt(1 - 0.95**step) + 1e-8
            pl[i] -= lr / (1 - 0.9**step) * ml[i] / denom
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-14}
    np.testing.assert_allclose(p, pl, **tol)
    np.testing.assert_allclose(m, ml, **tol)
    np.testing.assert_allclose(v, vl, **tol)


def test_fill():
    (y,) = run("fill", [], shape=(2, 3), value=1.5, dtype="float64")
    np.testing.assert_array_equal(y, np.full((2, 3), 1.5))


# --- shape errors -------------------------------------------------------------------------------------------
BAD_CALLS = [
    ("linear", [(2, 3, 4), (5, 6)], {}, "x has last dim 4 but w"),
    ("linear", [(2, 4), (4,)], {}, "must be 2-D"),
    ("linear_wgrad", [(2, 3, 4), (2, 5, 6)], {}, "must share all leading dims"),
    ("rmsnorm", [(2, 8), (4,)], {}, "gamma [4] must be [H] with H = last dim"),
    ("rope", [(1, 4, 12)], {"heads": 5}, "not divisible by heads 5"),
    ("rope", [(1, 4, 6)], {"heads": 2}, "head_dim 3 is odd"),
    ("rope", [(1, 4, 8)], {}, "heads=None must be a positive integer"),
    ("attention", [(1, 4, 8), (1, 4, 8), (1, 4, 8)], {"heads": 4, "kv_heads": 3}, "kv_heads 3 must divide heads 4"),
    ("attention", [(1, 4, 8), (1, 4, 8), (1, 4, 8)], {"heads": 4, "kv_heads": 2}, "needs [1, 4, 4]"),
    ("attention", [(1, 4, 8), (1, 4, 4), (1, 4, 4)], {"heads": 2, "kv_heads": 1, "scale": -1.0}, "positive"),
    ("attention_bwd", [(1, 4, 8)] * 3 + [(1, 4, 8), (1, 2, 3), (1, 4, 8)], {"heads": 2}, "lse [1, 2, 3]"),
    ("add", [(2, 3), (3, 2)], {}, "must have the same shape"),
    ("silu_mul", [(2, 3), (2, 4)], {}, "must have the same shape"),
    ("swiglu", [(2, 3), (4, 5), (4, 5)], {}, "w1 [4, 5] must be [H, F]"),
    ("cross_entropy_bwd", [(2, 3, 5), ("int32", (2, 3)), (1,)], {}, "dloss has shape [1]"),
    ("adamw", [(3,), (4,), (3,), (3,), (), (), ()], {}, "must have the same shape"),
    ("global_norm", [], {}, "at least one"),
    ("embedding_bwd", [("int32", (2, 3)), (2, 3, 4)], {}, "vocab=None must be a positive integer"),
]


@pytest.mark.parametrize("op, shapes, attrs, message", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_shapes_raise_shape_error_naming_the_op(op, shapes, attrs, message):
    g = Graph("bad")
    values = []
    for i, s in enumerate(shapes):
        dtype, shape = s if s and isinstance(s[0], str) else ("float32", s)
        values.append(g.input(f"x{i}", shape, dtype))
    with pytest.raises(ShapeError) as err:
        g.call(op, *values, **attrs)
    assert op in str(err.value) and message in str(err.value)


def test_ids_out_of_range_are_rejected():
    with pytest.raises(ShapeError, match=r"token ids must lie in \[0, 3\)"):
        run("embedding", [np.zeros((3, 2)), np.array([[0, 3]], np.int32)])


def test_every_registered_op_has_a_reference():
    mine = {"embedding", "embedding_bwd", "rmsnorm", "rmsnorm_bwd", "linear", "linear_wgrad", "rope", "attention",
            "attention_bwd", "silu_mul", "silu_mul_bwd", "swiglu", "add", "cross_entropy", "cross_entropy_bwd",
            "fill", "global_norm", "clip_scale", "adamw"}
    assert mine <= set(REGISTRY)
    # each op defines its own reference (the base class only raises NotImplementedError)
    missing = sorted(name for name, op in REGISTRY.items() if type(op).reference is Op.reference)
    assert missing == []
