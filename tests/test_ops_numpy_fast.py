"""The fast numpy paths (`numpy_into`, float32, writing into preallocated outputs) equal the float64
references, on small hypothesis shapes and on the nano-trickster layer shapes.

Tolerance (float32 against a float64 reference): float32 rounds at 6e-8 relative; a length-K dot product
accumulates up to ~sqrt(K) to K such roundings, exp/log add a few ulps, and the attention backward chains four
matmuls. So elementwise ops use 1e-5, and reductions/matmuls 1e-5 relative to the largest output magnitude times a
sqrt(K)-ish factor (we use 2e-5 * max|ref| for K <= 768). Any indexing or formula bug gives O(1) errors.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tilegraph.ops import get_op, parallel
from tilegraph.ops.base import TensorType

SETTINGS = settings(deadline=None, max_examples=20, derandomize=True)


@pytest.fixture(autouse=True, params=["one piece", "split over 3 workers"])
def worker_split(request, monkeypatch):
    """Run every check twice: as one piece, and with rows split over 3 threads down to one row per piece and
    walked in small chunks, so the threaded paths (per-worker scratch, partial sums, chunk loops) are exercised
    even on tiny shapes."""
    if request.param != "one piece":
        monkeypatch.setattr(parallel, "WORKERS", 3)
        monkeypatch.setattr(parallel, "MIN_ELEMENTS_PER_WORKER", 1)
        monkeypatch.setattr(parallel, "CHUNK_ELEMENTS", 7)  # and each piece walked in chunks of a few rows
    else:
        monkeypatch.setattr(parallel, "WORKERS", 1)
seeds = st.integers(0, 2**31 - 1)


def check_fast_path(op, inputs, attrs=None, rel=2e-5, term_scale=0.0):
    """numpy_into(float32 inputs) == reference(float64 inputs) within rel * max(max|ref|, term_scale).

    `term_scale` is the size of the terms an output is computed from, for outputs that are small differences of
    large terms (e.g. rmsnorm_bwd at H=1). Outputs start as NaN so that any element the fast path forgets to
    write fails."""
    opdef = get_op(op)
    full = {**opdef.attrs, **(attrs or {})}
    f32 = [a.astype(np.float32) if a.dtype.kind == "f" else a for a in inputs]
    f64 = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in f32]  # same values, exact upcast
    refs = opdef.reference(f64, full)
    types = opdef.infer([TensorType(a.shape, str(a.dtype)) for a in f32], full)
    outs = [np.full(t.shape, np.nan, dtype=t.dtype) for t in types]
    opdef.numpy_into(f32, outs, full)
    for i, (out, ref) in enumerate(zip(outs, refs)):
        assert out.dtype == np.float32 and out.shape == ref.shape
        scale = max(float(np.abs(ref).max(initial=0.0)), term_scale, 1e-30)
        np.testing.assert_allclose(out, ref, rtol=0, atol=rel * scale, err_msg=f"{op} output {i}")


def rand(rng, *shape, scale=1.0):
    return scale * rng.standard_normal(shape)


def check_attention_bwd(rng, q, k, v, o, lse, attrs):
    """dq, dk, dv within 5e-5 of the largest of the three: dq is a difference of equal terms at S=1 (exactly
    0), so its own magnitude is no scale for its rounding error."""
    inputs = [q, k, v, o, lse, rand(rng, *q.shape)]
    refs = get_op("attention_bwd").reference(inputs, {"scale": None, **attrs})
    terms = max(float(np.abs(r).max()) for r in refs)
    check_fast_path("attention_bwd", inputs, attrs, rel=5e-5, term_scale=terms)


@SETTINGS
@given(seed=seeds, b=st.integers(1, 3), s=st.integers(1, 70), kv_heads=st.integers(1, 2), group=st.integers(1, 3),
       d=st.sampled_from([2, 8, 16, 24]), causal=st.booleans(), scale=st.sampled_from([None, 0.2]))
def test_attention_fast_path(seed, b, s, kv_heads, group, d, causal, scale):
    rng = np.random.default_rng(seed)
    heads = kv_heads * group
    q, k, v = rand(rng, b, s, heads * d), rand(rng, b, s, kv_heads * d), rand(rng, b, s, kv_heads * d)
    attrs = {"heads": heads, "kv_heads": kv_heads, "causal": causal, "scale": scale}
    check_fast_path("attention", [q, k, v], attrs)
    o, lse = get_op("attention").reference([q, k, v], {**attrs})
    check_attention_bwd(rng, q, k, v, o, lse, attrs)


@pytest.mark.parametrize("s, causal, heads, kv_heads, d", [
    (256, True, 4, 2, 32), (200, True, 4, 2, 32), (130, False, 4, 2, 32),
    (300, True, 8, 2, 64), (65, False, 4, 1, 128),  # llama-like head dims, GQA 4:1
])
def test_attention_fast_path_at_training_lengths(s, causal, heads, kv_heads, d):
    """Several blocks of query rows (the CPU kernel takes 32 at a time), including lengths that are a multiple
    of neither the block nor the SIMD width, and head dims of several vectors."""
    rng = np.random.default_rng(s)
    q, k, v = rand(rng, 2, s, heads * d), rand(rng, 2, s, kv_heads * d), rand(rng, 2, s, kv_heads * d)
    attrs = {"heads": heads, "kv_heads": kv_heads, "causal": causal}
    check_fast_path("attention", [q, k, v], attrs)
    o, lse = get_op("attention").reference([q, k, v], {"scale": None, **attrs})
    check_attention_bwd(rng, q, k, v, o, lse, attrs)


@SETTINGS
@given(seed=seeds, rows=st.integers(1, 40), h=st.integers(1, 64), transpose=st.booleans())
def test_linear_fast_paths(seed, rows, h, transpose):
    rng = np.random.default_rng(seed)
    n = 1 + seed % 37
    x = rand(rng, 2, rows, h)
    w = rand(rng, n, h) if transpose else rand(rng, h, n)
    check_fast_path("linear", [x, w], {"transpose_w": transpose})
    check_fast_path("linear_wgrad", [x, rand(rng, 2, rows, n)], {"transpose_w": transpose})


@SETTINGS
@given(seed=seeds, rows=st.integers(1, 40), h=st.integers(1, 64))
def test_rmsnorm_fast_paths(seed, rows, h):
    rng = np.random.default_rng(seed)
    x, gamma = rand(rng, rows, h, scale=3.0), rand(rng, h)
    check_fast_path("rmsnorm", [x, gamma], {"eps": 1e-5}, rel=1e-5)
    dy = rand(rng, rows, h)
    r = 1 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-5)
    terms = float(np.abs(r * dy * gamma).max())  # dx = r*(dy*gamma - xhat*c) cancels when H is tiny
    check_fast_path("rmsnorm_bwd", [x, gamma, dy], {"eps": 1e-5}, term_scale=terms)


@SETTINGS
@given(seed=seeds, shape=st.lists(st.integers(1, 9), min_size=1, max_size=3))
def test_elementwise_fast_paths(seed, shape):
    rng = np.random.default_rng(seed)
    a, b, dy = rand(rng, *shape, scale=4.0), rand(rng, *shape), rand(rng, *shape)
    check_fast_path("silu_mul", [a, b], rel=1e-5)
    check_fast_path("silu_mul_bwd", [a, b, dy], rel=1e-5)
    check_fast_path("add", [a, b], rel=1e-6)


@SETTINGS
@given(seed=seeds, rows=st.integers(1, 30), h=st.integers(1, 40), f=st.integers(1, 40))
def test_swiglu_fast_path(seed, rows, h, f):
    rng = np.random.default_rng(seed)
    check_fast_path("swiglu", [rand(rng, 2, rows, h), rand(rng, h, f), rand(rng, h, f)])


@SETTINGS
@given(seed=seeds, b=st.integers(1, 3), s=st.integers(1, 20), heads=st.integers(1, 3), half=st.integers(1, 8),
       inverse=st.booleans())
def test_rope_fast_path(seed, b, s, heads, half, inverse):
    rng = np.random.default_rng(seed)
    check_fast_path("rope", [rand(rng, b, s, heads * 2 * half)], {"heads": heads, "inverse": inverse}, rel=1e-5)


@SETTINGS
@given(seed=seeds, b=st.integers(1, 3), s=st.integers(1, 20), vocab=st.integers(1, 300), h=st.integers(1, 8))
def test_embedding_and_cross_entropy_fast_paths(seed, b, s, vocab, h):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, (b, s)).astype(np.int32)
    check_fast_path("embedding", [rand(rng, vocab, h), ids], rel=0)  # a gather: exact (float32 rounding of input)
    check_fast_path("embedding_bwd", [ids, rand(rng, b, s, h)], {"vocab": vocab})
    logits = rand(rng, b, s, vocab, scale=5.0)
    check_fast_path("cross_entropy", [logits, ids], rel=1e-5)
    check_fast_path("cross_entropy_bwd", [logits, ids, np.asarray(1.5)], rel=1e-5)


def test_embedding_bwd_large_vocab_uses_scatter_add():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 5000, (2, 600)).astype(np.int32)  # V*T above the one-hot threshold
    check_fast_path("embedding_bwd", [ids, rand(rng, 2, 600, 3)], {"vocab": 5000})


def check_adamw(shape, seed, in_place):
    """adamw's fast path (into fresh NaN outputs, or in place into param and moments) equals its float64 reference
    on every element."""
    rng = np.random.default_rng(seed)
    inputs = [rand(rng, *shape), rand(rng, *shape), rand(rng, *shape, scale=0.1), np.abs(rand(rng, *shape, scale=0.1)),
              np.asarray(3e-3), np.asarray(4.0), np.asarray(0.7)]
    attrs = {"beta1": 0.9, "beta2": 0.95, "eps": 1e-8, "weight_decay": 0.1}
    opdef = get_op("adamw")
    refs = opdef.reference([a.astype(np.float64) for a in inputs], attrs)
    f32 = [a.astype(np.float32) for a in inputs]
    outs = [f32[0], f32[2], f32[3]] if in_place else [np.full(shape, np.nan, np.float32) for _ in range(3)]
    opdef.numpy_into(f32, outs, attrs)
    for out, ref in zip(outs, refs):
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("in_place", [False, True])
def test_adamw_fast_path_and_in_place_update(in_place):
    check_adamw((33, 17), 1, in_place)


@pytest.mark.parametrize("in_place", [False, True])
def test_adamw_update_above_the_split_threshold_writes_every_element(in_place, request, monkeypatch):
    """A 1024x1024 parameter is above adamw's inline limit (4 * MIN_ELEMENTS_PER_WORKER, read at import, so the
    fixture's patch does not reach it): with 3 workers its update runs as several pieces on several threads, and
    every element must equal the float64 reference (a piece left unwritten stays NaN or keeps the old value)."""
    pieces = []
    real = parallel.run_pieces
    monkeypatch.setattr(parallel, "run_pieces", lambda ps, body: (pieces.append(len(ps)), real(ps, body)))
    check_adamw((1024, 1024), 3, in_place)
    split = request.node.callspec.params["worker_split"] != "one piece"
    assert (pieces and pieces[0] > 1) if split else not pieces  # the threaded path ran (only) when split


def test_optimizer_scalars_fast_paths():
    rng = np.random.default_rng(2)
    check_fast_path("global_norm", [rand(rng, 40, 3), rand(rng, 7)], rel=1e-6)
    check_fast_path("clip_scale", [np.asarray(5.0)], {"max_norm": 1.0}, rel=1e-6)
    check_fast_path("fill", [], {"shape": (3,), "value": 2.0, "dtype": "float32"}, rel=0)


def test_attention_fast_path_rows_far_below_their_bound():
    """Long q and k vectors that are nearly orthogonal: |q||k| is ~9e4 while q.k stays small, so a softmax shifted
    by a norm bound instead of the row max would underflow to 0 / 0 (the kernel shifts by the exact row max)."""
    rng = np.random.default_rng(7)
    b, s, heads, d = 2, 150, 2, 8
    q = rand(rng, b, s, heads * d, scale=0.01)
    k = rand(rng, b, s, heads * d, scale=0.01)
    q[:, :, 0::d] = 300.0  # every head's first component: huge for q ...
    k[:, :, 1::d] = 300.0  # ... and for k, in another component: q.k stays small, |q||k| is ~9e4
    v = rand(rng, b, s, heads * d)
    for causal in (True, False):
        attrs = {"heads": heads, "kv_heads": heads, "causal": causal, "scale": None}
        check_fast_path("attention", [q, k, v], attrs)
        o, lse = get_op("attention").reference([q, k, v], attrs)
        check_attention_bwd(rng, q, k, v, o, lse, attrs)


def test_fast_paths_called_from_two_threads_at_once():
    """Scratch buffers are per thread: two callers running the same op on different data at the same time (as a
    threaded backend might) each get their own results."""
    import threading

    rng = np.random.default_rng(5)
    cases = []
    for _ in range(2):
        q, k, v = (rand(rng, 2, 40, 16).astype(np.float32) for _ in range(3))
        x, gamma, dy = rand(rng, 64, 48).astype(np.float32), rand(rng, 48).astype(np.float32), rand(rng, 64, 48)
        cases.append(((q, k, v), (x, gamma, dy.astype(np.float32))))
    attrs = {"heads": 4, "kv_heads": 2, "causal": True, "scale": None}
    kv = [(q, k[..., :8].copy(), v[..., :8].copy()) for (q, k, v), _ in cases]

    def run(i, results):
        for _ in range(20):
            o, lse = np.empty((2, 40, 16), np.float32), np.empty((2, 4, 40), np.float32)
            get_op("attention").numpy_into(list(kv[i]), [o, lse], attrs)
            dx, dg = np.empty((64, 48), np.float32), np.empty(48, np.float32)
            get_op("rmsnorm_bwd").numpy_into(list(cases[i][1]), [dx, dg], {"eps": 1e-5})
            results.append((o, dx, dg))

    results = [[], []]
    threads = [threading.Thread(target=run, args=(i, results[i])) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(2):
        o_ref, _ = get_op("attention").reference([a.astype(np.float64) for a in kv[i]], attrs)
        dx_ref, dg_ref = get_op("rmsnorm_bwd").reference([a.astype(np.float64) for a in cases[i][1]], {"eps": 1e-5})
        for o, dx, dg in results[i]:
            np.testing.assert_allclose(o, o_ref, rtol=0, atol=2e-5 * np.abs(o_ref).max())
            np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=2e-5 * np.abs(dx_ref).max())
            np.testing.assert_allclose(dg, dg_ref, rtol=0, atol=2e-5 * np.abs(dg_ref).max())


def test_single_threaded_blas_restores_the_thread_count_after_overlapping_callers():
    if parallel._BLAS_THREADS is None:
        pytest.skip("numpy is not linked to the OpenBLAS whose thread count ops.parallel can set")
    get, _ = parallel._BLAS_THREADS
    before = get()
    outer = parallel.single_threaded_blas()
    outer.__enter__()
    assert get() == 1
    inner = parallel.single_threaded_blas()
    inner.__enter__()
    outer.__exit__(None, None, None)  # the first caller leaves while the second is still inside
    assert get() == 1
    inner.__exit__(None, None, None)
    assert get() == before


@pytest.mark.parametrize("op, make_inputs", [
    ("embedding", lambda ids: [np.zeros((4, 3), np.float32), ids]),
    ("embedding_bwd", lambda ids: [ids, np.zeros((1, 2, 3), np.float32)]),
    ("cross_entropy", lambda ids: [np.zeros((1, 2, 4), np.float32), ids]),
    ("cross_entropy_bwd", lambda ids: [np.zeros((1, 2, 4), np.float32), ids, np.asarray(1.0, np.float32)]),
])
def test_fast_paths_reject_ids_out_of_range(op, make_inputs):
    from tilegraph.errors import ShapeError

    inputs = make_inputs(np.array([[0, 4]], np.int32))
    opdef = get_op(op)
    attrs = {**opdef.attrs, **({"vocab": 4} if op == "embedding_bwd" else {})}
    types = opdef.infer([TensorType(a.shape, str(a.dtype)) for a in inputs], attrs)
    with pytest.raises(ShapeError, match=r"must lie in \[0, 4\)"):
        opdef.numpy_into(inputs, [np.empty(t.shape, t.dtype) for t in types], attrs)


def _float64_cases(rng):
    """(op, inputs, attrs) for every fast path, float64, shapes that take the blocked/threaded branches."""
    b, s, heads, kv, d = 2, 130, 4, 2, 8
    q, k, v = rand(rng, b, s, heads * d), rand(rng, b, s, kv * d), rand(rng, b, s, kv * d)
    att = {"heads": heads, "kv_heads": kv, "causal": True, "scale": None}
    o, lse = get_op("attention").reference([q, k, v], att)
    ids = rng.integers(0, 50, (b, s)).astype(np.int32)
    x, g = rand(rng, b, s, 24), rand(rng, 24)
    a, c = rand(rng, b, s, 40, scale=3.0), rand(rng, b, s, 40)
    return [
        ("attention", [q, k, v], att),
        ("attention_bwd", [q, k, v, o, lse, rand(rng, *q.shape)], att),
        ("linear", [x, rand(rng, 24, 9)], {}),
        ("linear", [x, rand(rng, 9, 24)], {"transpose_w": True}),
        ("linear_wgrad", [x, rand(rng, b, s, 9)], {"transpose_w": True}),
        ("rmsnorm", [x, g], {"eps": 1e-5}),
        ("rmsnorm_bwd", [x, g, rand(rng, *x.shape)], {"eps": 1e-5}),
        ("rope", [rand(rng, b, s, 24)], {"heads": 3, "inverse": True}),
        ("silu_mul", [a, c], {}),
        ("silu_mul_bwd", [a, c, rand(rng, *a.shape)], {}),
        ("swiglu", [x, rand(rng, 24, 40), rand(rng, 24, 40)], {}),
        ("add", [a, c], {}),
        ("embedding", [rand(rng, 50, 24), ids], {}),
        ("embedding_bwd", [ids, x], {"vocab": 50}),
        ("cross_entropy", [rand(rng, b, s, 50, scale=4.0), ids], {}),
        ("cross_entropy_bwd", [rand(rng, b, s, 50, scale=4.0), ids, np.asarray(0.7)], {}),
        ("adamw", [x, rand(rng, *x.shape), rand(rng, *x.shape), np.abs(rand(rng, *x.shape)), np.asarray(1e-3),
                   np.asarray(5.0), np.asarray(0.5)], {"weight_decay": 0.1}),
        ("global_norm", [x, g], {}),
    ]


def test_fast_paths_in_float64_match_the_references_to_rounding():
    """In float64 the fast paths must agree with the references to ~1e-10: a formula slip that float32's
    looser tolerances could hide shows up here. (The runtime runs float64 graphs through the same code.)"""
    rng = np.random.default_rng(11)
    for op, inputs, attrs in _float64_cases(rng):
        opdef = get_op(op)
        full = {**opdef.attrs, **attrs}
        refs = opdef.reference(inputs, full)
        types = opdef.infer([TensorType(a.shape, str(a.dtype)) for a in inputs], full)
        outs = [np.full(t.shape, np.nan, dtype=t.dtype) for t in types]
        opdef.numpy_into(inputs, outs, full)
        for i, (out, ref) in enumerate(zip(outs, refs)):
            assert out.dtype == np.float64, (op, i, out.dtype)
            np.testing.assert_allclose(out, ref, rtol=0, atol=1e-10 * max(1.0, float(np.abs(ref).max())),
                                       err_msg=f"{op} output {i}")
