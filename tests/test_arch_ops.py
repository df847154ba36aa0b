"""The ops of the issue-14 spec vocabulary (layernorm, gelu, relu, mul, add_bias, ALiBi attention): backward rules
against central finite differences in float64, and the numpy fast paths (float32 and float64) against the float64
references."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_eval import check_backward_against_fd
from tilegraph.ops import get_op
from tilegraph.ops.attention import alibi_slopes

SETTINGS = settings(deadline=None, max_examples=12, derandomize=True, database=None)
seeds = st.integers(0, 2**31 - 1)
batch = st.sampled_from([1, 2])
seq = st.integers(1, 13)


def normal(rng, *shape):
    return rng.standard_normal(shape)


# -- backward rules vs finite differences (float64) ---------------------------------------------------------------
@SETTINGS
@given(seed=seeds, b=batch, s=seq, h=st.integers(2, 12), eps=st.sampled_from([1e-5, 1e-2]))
def test_layernorm_backward(seed, b, s, h, eps):
    rng = np.random.default_rng(seed)
    x = normal(rng, b, s, h) * 2 + 0.5  # a nonzero mean, so the centring matters
    check_backward_against_fd("layernorm", [x, normal(rng, h)], {"eps": eps}, rng, wrt=[0, 1])


@SETTINGS
@given(seed=seeds, shape=st.lists(st.integers(1, 5), min_size=1, max_size=3))
def test_gelu_backward(seed, shape):
    rng = np.random.default_rng(seed)
    check_backward_against_fd("gelu", [3 * normal(rng, *shape)], {}, rng, wrt=[0])


@SETTINGS
@given(seed=seeds, shape=st.lists(st.integers(1, 5), min_size=1, max_size=3))
def test_relu_backward(seed, shape):
    rng = np.random.default_rng(seed)
    x = normal(rng, *shape)
    x[np.abs(x) < 1e-3] = 0.5  # away from the kink, where finite differences are not a derivative
    check_backward_against_fd("relu", [x], {}, rng, wrt=[0])


@SETTINGS
@given(seed=seeds, shape=st.lists(st.integers(1, 5), min_size=1, max_size=3))
def test_mul_backward(seed, shape):
    rng = np.random.default_rng(seed)
    check_backward_against_fd("mul", [normal(rng, *shape), normal(rng, *shape)], {}, rng, wrt=[0, 1])


@SETTINGS
@given(seed=seeds, b=batch, s=seq, n=st.integers(1, 7))
def test_add_bias_backward(seed, b, s, n):
    rng = np.random.default_rng(seed)
    check_backward_against_fd("add_bias", [normal(rng, b, s, n), normal(rng, n)], {}, rng, wrt=[0, 1])


@settings(deadline=None, max_examples=12, derandomize=True, database=None)
@given(seed=seeds, b=batch, s=st.integers(1, 9), kv_heads=st.integers(1, 2), group=st.integers(1, 3),
       causal=st.booleans())
def test_alibi_attention_backward(seed, b, s, kv_heads, group, causal):
    rng = np.random.default_rng(seed)
    heads, d = kv_heads * group, 2
    q, k, v = normal(rng, b, s, heads * d), normal(rng, b, s, kv_heads * d), normal(rng, b, s, kv_heads * d)
    attrs = {"heads": heads, "kv_heads": kv_heads, "causal": causal, "scale": None, "alibi": True}
    check_backward_against_fd("attention", [q, k, v], attrs, rng, wrt=[0, 1, 2], cotangent_for=[True, False])


# -- references against formulas written out independently ---------------------------------------------------------
def test_alibi_slopes_are_the_papers():
    # Press et al.: 8 heads -> 1/2, 1/4, ..., 1/256; 12 heads -> the 8-head slopes, then 2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5.
    assert np.allclose(alibi_slopes(8), [2.0**-i for i in range(1, 9)])
    assert np.allclose(alibi_slopes(12), [2.0**-i for i in range(1, 9)] + [2.0 ** -(i + 0.5) for i in range(4)])


def test_alibi_attention_reference_by_loops():
    """One head's output from the definition: softmax over j <= i of (q_i.k_j * scale - m * (i - j))."""
    rng = np.random.default_rng(0)
    s, heads, d = 5, 2, 3
    q, k, v = normal(rng, 1, s, heads * d), normal(rng, 1, s, heads * d), normal(rng, 1, s, heads * d)
    o, _ = get_op("attention").reference([q, k, v], {"heads": heads, "kv_heads": heads, "causal": True,
                                                     "scale": None, "alibi": True})
    m = alibi_slopes(heads)[1]
    qh, kh, vh = (a[0, :, d:] for a in (q, k, v))
    for i in range(s):
        w = np.array([qh[i] @ kh[j] / math.sqrt(d) - m * (i - j) for j in range(i + 1)])
        p = np.exp(w - w.max()) / np.exp(w - w.max()).sum()
        np.testing.assert_allclose(o[0, i, d:], p @ vh[: i + 1], rtol=1e-12)


def test_layernorm_and_gelu_references_by_formula():
    rng = np.random.default_rng(1)
    x, g = normal(rng, 3, 7), normal(rng, 7)
    (y,) = get_op("layernorm").reference([x, g], {"eps": 1e-5})
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(y, (x - mu) / np.sqrt(var + 1e-5) * g, rtol=1e-12)
    (gy,) = get_op("gelu").reference([x], {})
    exact = np.array([0.5 * t * (1 + math.erf(t / math.sqrt(2))) for t in x.ravel()]).reshape(x.shape)
    np.testing.assert_allclose(gy, exact, atol=1e-3)  # the tanh approximation is within ~3e-4 of the erf GELU


# -- numpy fast paths (what training runs) against the float64 references ------------------------------------------
# float32: each output is a short chain of float32 operations on O(1) values (a mean over H <= 300 elements, a
# tanh/sigmoid through the kernels' exp with ~1 ulp error), so relative errors stay within ~1e3 float32 ulps (6e-5);
# float64: ~1e-12. Any wrong formula is off by O(1).
TOL = {np.float32: (2e-4, 2e-5), np.float64: (1e-10, 1e-12)}
CASES = [
    ("layernorm", lambda r: [normal(r, 2, 37, 300) + 1, normal(r, 300)], {"eps": 1e-5}),
    ("layernorm_bwd", lambda r: [normal(r, 2, 37, 300) + 1, normal(r, 300), normal(r, 2, 37, 300)], {"eps": 1e-5}),
    ("gelu", lambda r: [4 * normal(r, 301, 129)], {}),
    ("gelu_bwd", lambda r: [4 * normal(r, 301, 129), normal(r, 301, 129)], {}),
    ("relu", lambda r: [normal(r, 301, 129)], {}),
    ("relu_bwd", lambda r: [normal(r, 301, 129), normal(r, 301, 129)], {}),
    ("mul", lambda r: [normal(r, 301, 129), normal(r, 301, 129)], {}),
    ("add_bias", lambda r: [normal(r, 3, 301, 65), normal(r, 65)], {}),
    ("bias_grad", lambda r: [normal(r, 3, 301, 65)], {}),
    ("attention", lambda r: [normal(r, 2, 19, 24), normal(r, 2, 19, 12), normal(r, 2, 19, 12)],
     {"heads": 4, "kv_heads": 2, "causal": True, "scale": None, "alibi": True}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op, make, attrs", CASES, ids=[c[0] for c in CASES])
def test_fast_path_matches_float64_reference(op, make, attrs, dtype):
    inputs = make(np.random.default_rng(7))
    impl = get_op(op)
    want = impl.reference(inputs, attrs)
    cast = [a.astype(dtype) for a in inputs]
    got = [np.full(w.shape, np.nan, dtype) for w in want]
    impl.numpy_forward(cast, got, attrs)
    rtol, atol = TOL[dtype]
    scale = max(1.0, max(float(np.abs(w).max()) for w in want))
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol * scale * (30 if op == "bias_grad" else 1))
