"""Sliding-window causal attention (`window` attr): the reference equals explicit per-query loops over the keys
i-W+1..i, the backward rule equals finite differences, and the CPU kernels (which skip the key blocks left of the
window) equal the float64 reference. Tolerances as in test_ops_reference / test_ops_numpy_fast."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_eval import check_backward_against_fd
from test_ops_numpy_fast import check_attention_bwd, check_fast_path
from tilegraph.ops import get_op, parallel

from tilegraph.errors import ShapeError

seeds = st.integers(0, 2**31 - 1)


def windowed_loops(q, k, v, heads, kv_heads, window, scale):
    """One (batch, head, query) at a time over keys max(0, i-W+1) .. i, float64."""
    b, s, _ = q.shape
    d = q.shape[-1] // heads
    group = heads // kv_heads
    o, lse = np.zeros((b, s, heads * d)), np.zeros((b, heads, s))
    for bi in range(b):
        for h in range(heads):
            kvh = h // group
            qh, kh, vh = (x[bi, :, n * d:(n + 1) * d].astype(np.float64) for x, n in ((q, h), (k, kvh), (v, kvh)))
            for i in range(s):
                keys = range(max(0, i - window + 1), i + 1)
                logits = np.array([scale * qh[i] @ kh[j] for j in keys])
                lse[bi, h, i] = math.log(sum(math.exp(x) for x in logits))
                o[bi, i, h * d:(h + 1) * d] = sum(math.exp(x - lse[bi, h, i]) * vh[j] for x, j in zip(logits, keys))
    return o, lse


@settings(deadline=None, max_examples=20, derandomize=True, database=None)
@given(seed=seeds, s=st.integers(1, 12), window=st.integers(1, 14), kv_heads=st.integers(1, 2),
       group=st.integers(1, 2), d=st.sampled_from([1, 4]))
def test_window_reference_matches_loops(seed, s, window, kv_heads, group, d):
    rng = np.random.default_rng(seed)
    heads = kv_heads * group
    q, k, v = (rng.standard_normal((2, s, n * d)) for n in (heads, kv_heads, kv_heads))
    attrs = {**get_op("attention").attrs, "heads": heads, "kv_heads": kv_heads, "window": window}
    o, lse = get_op("attention").reference([q, k, v], attrs)
    o_ref, lse_ref = windowed_loops(q, k, v, heads, kv_heads, window, 1 / math.sqrt(d))
    np.testing.assert_allclose(o, o_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(lse, lse_ref, rtol=1e-12, atol=1e-12)


@settings(deadline=None, max_examples=12, derandomize=True, database=None)
@given(seed=seeds, b=st.sampled_from([1, 2]), s=st.integers(2, 11), window=st.integers(1, 6),
       kv_heads=st.integers(1, 2), group=st.integers(1, 2))
def test_window_backward_matches_finite_differences(seed, b, s, window, kv_heads, group):
    rng = np.random.default_rng(seed)
    heads = kv_heads * group
    q, k, v = (rng.standard_normal((b, s, n * 2)) for n in (heads, kv_heads, kv_heads))
    attrs = {"heads": heads, "kv_heads": kv_heads, "window": window}
    check_backward_against_fd("attention", [q, k, v], attrs, rng, wrt=[0, 1, 2], cotangent_for=[True, False])


@pytest.fixture(params=["one piece", "split over 3 workers"])
def workers(request, monkeypatch):
    monkeypatch.setattr(parallel, "WORKERS", 1 if request.param == "one piece" else 3)
    monkeypatch.setattr(parallel, "MIN_ELEMENTS_PER_WORKER", 1)


@pytest.mark.parametrize("s, window, heads, kv_heads, d", [
    (70, 1, 2, 1, 16), (70, 5, 2, 2, 8), (100, 33, 4, 2, 32), (200, 64, 4, 1, 32), (131, 47, 2, 2, 64),
    (40, 200, 2, 1, 24),  # window longer than the sequence: plain causal
])
def test_window_cpu_kernel_matches_reference(workers, s, window, heads, kv_heads, d):
    """Windows smaller than, equal to and not a multiple of the kernel's 32-row blocks and SIMD width, so blocks
    start mid-vector and rows in one block see different first keys."""
    rng = np.random.default_rng(s + window)
    q, k, v = (rng.standard_normal((2, s, n * d)) for n in (heads, kv_heads, kv_heads))
    attrs = {"heads": heads, "kv_heads": kv_heads, "causal": True, "scale": None, "window": window}
    check_fast_path("attention", [q, k, v], attrs)
    o, lse = get_op("attention").reference([q, k, v], attrs)
    check_attention_bwd(rng, q, k, v, o, lse, attrs)
    if window < s:  # the window changes the result (the test would pass on a kernel that ignores it otherwise)
        full, _ = get_op("attention").reference([q, k, v], {**attrs, "window": None})
        assert np.abs(full - o).max() > 1e-3


def test_window_attr_checks():
    from tilegraph.graph.ir import Graph

    g = Graph()
    q = g.input("q", (1, 8, 8))
    for bad, words in ((0, "window=0 must be a positive"), (3.5, "window=3.5"), (True, "window=True")):
        with pytest.raises(ShapeError, match=words):
            g.call("attention", q, q, q, heads=2, window=bad)
    with pytest.raises(ShapeError, match="needs causal=True"):
        g.call("attention", q, q, q, heads=2, causal=False, window=4)


def test_window_flops_count_only_visible_pairs():
    from tilegraph.graph.ir import Graph

    g = Graph()
    q = g.input("q", (1, 10, 4))
    o, _ = g.call("attention", q, q, q, heads=1, window=3)
    # visible pairs: 1 + 2 + 3*8 = 27; two matmuls of 2 FLOPs per multiply-add over head_dim 4
    assert get_op("attention").flops(o.producer) == 2 * 2 * 4 * 27


def test_spec_window_reaches_the_model():
    """One layer with attention_window 4: the logits at position i depend on tokens i-3..i only."""
    from tilegraph.graph import build, init_params, load_spec

    from tilegraph.compiler import compile

    spec = load_spec({"name": "w", "vocab_size": 32, "hidden_size": 32, "num_layers": 1, "num_heads": 2,
                      "mlp_hidden": 32, "max_seq_len": 16, "attention_window": 4})
    program = compile(build(spec, batch=1, seq=12))
    state = program.init_state(init_params(spec, seed=1))
    tokens = np.arange(12, dtype=np.int32)[None] % 32
    changed = tokens.copy()
    changed[0, 2] = 31
    a = program.run(state, {"tokens": tokens, "targets": tokens})["logits"]
    b = program.run(state, {"tokens": changed, "targets": tokens})["logits"]
    moved = np.abs(a - b).max(axis=-1)[0]
    assert np.all(moved[2:6] > 1e-6) and np.all(moved[6:] == 0) and np.all(moved[:2] == 0)
