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
    impl.numpy_into(cast, got, attrs)
    rtol, atol = TOL[dtype]
    scale = max(1.0, max(float(np.abs(w).max()) for w in want))
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol * scale * (30 if op == "bias_grad" else 1))


# -- dropout -------------------------------------------------------------------------------------------------------
def _dropout(x, step, p=0.25, seed=5, salt=3):
    return get_op("dropout").reference([x, np.float64(step)], {"p": p, "seed": seed, "salt": salt})[0]


def test_dropout_mask_rate_scale_and_determinism():
    x = np.ones((1000, 1000))
    y = _dropout(x, 7)
    kept = y != 0
    # 1e6 Bernoulli(0.75) draws: the kept fraction has standard deviation 4.3e-4; 0.005 is > 10 sigma.
    assert abs(kept.mean() - 0.75) < 0.005
    np.testing.assert_array_equal(y[kept], 1 / 0.75)  # inverted dropout: the expectation is unchanged
    np.testing.assert_array_equal(_dropout(x, 7), y)  # the same (seed, salt, step): the same mask
    for other in (_dropout(x, 8), _dropout(x, 7, salt=4), _dropout(x, 7, seed=6)):
        assert 0.5 < np.mean((other != 0) == kept) < 0.7  # independent masks agree on ~0.75^2 + 0.25^2 = 62.5%
    assert np.array_equal(_dropout(x, 7, p=0.0), x)


@SETTINGS
@given(seed=seeds, shape=st.lists(st.integers(1, 6), min_size=1, max_size=3), step=st.integers(1, 1000))
def test_dropout_backward(seed, shape, step):
    rng = np.random.default_rng(seed)
    attrs = {"p": 0.3, "seed": seed, "salt": 2}
    check_backward_against_fd("dropout", [normal(rng, *shape), np.float64(step)], attrs, rng, wrt=[0])


def test_dropout_only_in_training_graphs_and_seeded_by_step():
    from tilegraph.graph import build, init_params, load_spec, training_step

    from tilegraph.compiler import compile

    spec = load_spec({"name": "d", "vocab_size": 19, "hidden_size": 16, "num_layers": 2, "num_heads": 2,
                      "mlp_hidden": 24, "max_seq_len": 8, "dropout": 0.2})  # fmt: skip
    assert not any(n.op == "dropout" for n in build(spec, 2, 8).nodes)
    train = training_step(spec, 2, 8, dtype="float64", dropout_seed=11)
    assert sum(n.op == "dropout" for n in train.nodes) == 2 * (1 + 2 * spec.num_layers)  # forward + backward
    prog = compile(train)
    params = init_params(spec, 0, dtype="float64")
    rng = np.random.default_rng(0)
    toks = rng.integers(0, 19, (2, 8)).astype(np.int32)

    def loss(step):
        feeds = {"tokens": toks, "targets": toks, "lr": np.float64(0.0), "step": np.float64(step)}
        return float(prog.run(prog.init_state(params), feeds)["loss"])

    assert loss(3) == loss(3) != loss(4)
