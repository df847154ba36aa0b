"""Every differentiable op's backward rule (emitted as graph ops) agrees with central finite differences in
float64, on hypothesis-generated shapes: odd sequence lengths (not multiples of 32), GQA head ratios, batch 1."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_eval import check_backward_against_fd

SETTINGS = settings(deadline=None, max_examples=12, derandomize=True)
seeds = st.integers(0, 2**31 - 1)
batch = st.sampled_from([1, 2])
seq = st.integers(1, 13)


def normal(rng, *shape):
    return rng.standard_normal(shape)


@SETTINGS
@given(seed=seeds, b=batch, s=seq, h=st.integers(1, 9), n=st.integers(1, 5), transpose=st.booleans())
def test_linear_backward(seed, b, s, h, n, transpose):
    rng = np.random.default_rng(seed)
    w = normal(rng, n, h) if transpose else normal(rng, h, n)
    check_backward_against_fd("linear", [normal(rng, b, s, h), w], {"transpose_w": transpose}, rng, wrt=[0, 1])


@SETTINGS
@given(seed=seeds, b=batch, s=seq, k=st.integers(1, 6), n=st.integers(1, 6), transpose=st.booleans())
def test_linear_wgrad_backward(seed, b, s, k, n, transpose):
    rng = np.random.default_rng(seed)
    inputs = [normal(rng, b, s, k), normal(rng, b, s, n)]
    check_backward_against_fd("linear_wgrad", inputs, {"transpose_w": transpose}, rng, wrt=[0, 1])


@SETTINGS
@given(seed=seeds, b=batch, s=seq, vocab=st.integers(1, 9), h=st.integers(1, 6))
def test_embedding_backward(seed, b, s, vocab, h):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, (b, s)).astype(np.int32)  # repeated ids exercise the scatter-add
    check_backward_against_fd("embedding", [normal(rng, vocab, h), ids], {}, rng, wrt=[0])


@SETTINGS
@given(seed=seeds, b=batch, s=seq, h=st.integers(1, 12), eps=st.sampled_from([1e-5, 1e-2]))
def test_rmsnorm_backward(seed, b, s, h, eps):
    rng = np.random.default_rng(seed)
    inputs = [normal(rng, b, s, h), normal(rng, h)]
    check_backward_against_fd("rmsnorm", inputs, {"eps": eps}, rng, wrt=[0, 1])


@SETTINGS
@given(seed=seeds, b=batch, s=seq, heads=st.integers(1, 3), half=st.integers(1, 4), inverse=st.booleans())
def test_rope_backward(seed, b, s, heads, half, inverse):
    rng = np.random.default_rng(seed)
    x = normal(rng, b, s, heads * 2 * half)
    check_backward_against_fd("rope", [x], {"heads": heads, "base": 100.0, "inverse": inverse}, rng, wrt=[0])


@settings(deadline=None, max_examples=16, derandomize=True)
@given(
    seed=seeds,
    b=batch,
    s=st.integers(1, 11),
    kv_heads=st.integers(1, 2),
    group=st.integers(1, 3),
    d=st.sampled_from([2, 4]),
    causal=st.booleans(),
    scale=st.sampled_from([None, 0.3, 1.7]),
)
def test_attention_backward(seed, b, s, kv_heads, group, d, causal, scale):
    rng = np.random.default_rng(seed)
    heads = kv_heads * group
    q, k, v = normal(rng, b, s, heads * d), normal(rng, b, s, kv_heads * d), normal(rng, b, s, kv_heads * d)
    attrs = {"heads": heads, "kv_heads": kv_heads, "causal": causal, "scale": scale}
    # Only o carries a gradient (lse feeds attention_bwd, never a loss).
    check_backward_against_fd("attention", [q, k, v], attrs, rng, wrt=[0, 1, 2], cotangent_for=[True, False])


@SETTINGS
@given(seed=seeds, shape=st.lists(st.integers(1, 5), min_size=1, max_size=3))
def test_silu_mul_backward(seed, shape):
    rng = np.random.default_rng(seed)
    a = 3 * normal(rng, *shape)  # wide range so both tails of the sigmoid are exercised
    check_backward_against_fd("silu_mul", [a, normal(rng, *shape)], {}, rng, wrt=[0, 1])


@SETTINGS
@given(seed=seeds, b=batch, s=st.integers(1, 7), h=st.integers(1, 5), f=st.integers(1, 6))
def test_swiglu_backward(seed, b, s, h, f):
    rng = np.random.default_rng(seed)
    inputs = [normal(rng, b, s, h), normal(rng, h, f), normal(rng, h, f)]
    check_backward_against_fd("swiglu", inputs, {}, rng, wrt=[0, 1, 2])


@SETTINGS
@given(seed=seeds, shape=st.lists(st.integers(1, 5), min_size=0, max_size=3))
def test_add_backward(seed, shape):
    rng = np.random.default_rng(seed)
    a, b = np.asarray(normal(rng, *shape)), np.asarray(normal(rng, *shape))
    check_backward_against_fd("add", [a, b], {}, rng, wrt=[0, 1])


@SETTINGS
@given(seed=seeds, b=batch, s=seq, vocab=st.integers(1, 9))
def test_cross_entropy_backward(seed, b, s, vocab):
    rng = np.random.default_rng(seed)
    logits = 2 * normal(rng, b, s, vocab)
    targets = rng.integers(0, vocab, (b, s)).astype(np.int32)
    check_backward_against_fd("cross_entropy", [logits, targets], {}, rng, wrt=[0])
