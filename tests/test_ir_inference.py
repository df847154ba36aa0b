"""Prefill and decode graphs (graph/inference.py) compute what the training forward computes.

Ground truth is build()'s forward over the whole sequence, in float64 on the numpy backend: prefill's last-token
logits equal its logits at position S-1, and a decode step over a cache filled by that prefill equals its logits at
position S. Both are the same float64 arithmetic in a different order (flash attention vs. a cache read), so they
agree to ~1e-15; 1e-10 leaves room for that and is far below what a wrong RoPE position, a missing cache row or an
off-by-one mask changes (1e-3..1).
"""

import numpy as np
import pytest
from tilegraph.graph import build, init_params, load_spec
from tilegraph.graph.inference import decode, prefill

from tilegraph.compiler import compile
from tilegraph.errors import ShapeError

SPEC = "specs/tiny-test.yaml"  # GQA: 4 query heads over 2 KV heads
POSITIONS = ("rope", "learned", "sinusoidal", "alibi", "none")


def _with(positions: str, **change):
    """tiny-test with another position kind (and other changes)."""
    return load_spec({**load_spec(SPEC).to_dict(), "positions": positions, **change})


def _params(spec):
    """init_params, with the learned position table scaled up so that a wrong row moves the logits by far more
    than the tolerance (the init's std 0.02 already does; x50 makes a wrong position an O(1) change)."""
    params = init_params(spec, seed=0, dtype="float64")
    if "pos_embedding" in params:
        params["pos_embedding"] = params["pos_embedding"] * 50
    return params


@pytest.mark.parametrize("positions", POSITIONS)
@pytest.mark.parametrize("seq", [1, 5, 8])
def test_prefill_then_decode_equal_the_training_forward(seq, positions):
    spec = _with(positions)
    params = _params(spec)
    batch = 3
    tokens = np.random.default_rng(seq).integers(0, spec.vocab_size, (batch, seq + 1)).astype(np.int32)
    fwd = compile(build(spec, batch, seq + 1, dtype="float64"))
    ref = fwd.run(fwd.init_state(params), {"tokens": tokens, "targets": tokens})["logits"]

    pre = compile(prefill(spec, batch, seq, dtype="float64"))
    cache = pre.init_state(params)
    logits = pre.run(cache, {"tokens": tokens[:, :seq]})["logits"]
    assert logits.shape == (batch, 1, spec.vocab_size)
    np.testing.assert_allclose(logits[:, 0], ref[:, seq - 1], rtol=1e-10, atol=1e-10)

    dec = compile(decode(spec, batch, seq + 1, dtype="float64"))
    state = dec.init_state(params)
    for k in state:
        if k.startswith("kv."):
            state[k][:, :seq] = cache[k]
    logits = dec.run(state, {"tokens": tokens[:, seq:]})["logits"]
    np.testing.assert_allclose(logits[:, 0], ref[:, seq], rtol=1e-10, atol=1e-10)
    # the step wrote the new token's key and value at the last position
    assert all(np.any(state[k][:, seq] != 0) for k in state if k.startswith("kv."))


def test_decode_needs_a_cached_token_and_a_fitting_context():
    with pytest.raises(ShapeError, match="context >= 2"):
        decode(SPEC, 1, 1)
    with pytest.raises(ShapeError, match="max_seq_len 16"):
        decode(SPEC, 1, 17)
    with pytest.raises(ShapeError, match="max_seq_len 16"):
        prefill(SPEC, 1, 17)


@pytest.mark.parametrize("window", [None, 3])
@pytest.mark.parametrize("positions", POSITIONS)
def test_chunked_prefill_writes_the_same_cache_and_logits(positions, window):
    """Two chunks of 4 (the second attends to the cache the first wrote) equal one prefill of 8; with a window of 3
    the second chunk's queries see only the last 3 positions of the cache (keys 0, 1 are in it but out of reach)."""
    from tilegraph.graph.inference import prefill_chunk

    spec = _with(positions, **({} if window is None else {"attention_window": window}))
    params = _params(spec)
    tokens = np.random.default_rng(7).integers(0, spec.vocab_size, (2, 8)).astype(np.int32)
    whole = compile(prefill(spec, 2, 8, dtype="float64"))
    ref_state = whole.init_state(params)
    ref = whole.run(ref_state, {"tokens": tokens})["logits"]
    state = None
    for start in (0, 4):
        prog = compile(prefill_chunk(spec, 2, 8, 4, start, dtype="float64"))
        fresh = prog.init_state(params)
        state = fresh if state is None else {**fresh, **{k: v for k, v in state.items() if k.startswith("kv.")}}
        out = prog.run(state, {"tokens": tokens[:, start : start + 4]})["logits"]
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)
    for k in ref_state:
        if k.startswith("kv."):
            np.testing.assert_allclose(state[k], ref_state[k], rtol=1e-10, atol=1e-12)


def test_windowed_prefill_equals_the_forward_and_decode_reads_a_rolling_cache_of_the_window():
    """attention_window: prefill attends within the window (last-token logits equal the training forward's); a
    decode step beyond the window reads a cache of W positions, as a rolling-buffer cache does."""
    from tilegraph.graph import build, init_params, load_spec
    from tilegraph.graph.inference import decode, prefill

    from tilegraph.compiler import compile

    spec = {"name": "win", "vocab_size": 32, "hidden_size": 16, "num_layers": 1, "num_heads": 2, "mlp_hidden": 24,
            "max_seq_len": 64, "attention_window": 5}
    params = init_params(spec, seed=0, dtype="float64")
    tokens = np.random.default_rng(0).integers(0, 32, (2, 12)).astype(np.int32)
    full = compile(build(spec, 2, 12, dtype="float64"))
    want = full.run(full.init_state(params), {"tokens": tokens, "targets": tokens})["logits"][:, -1:]
    pre = compile(prefill(spec, 2, 12, "float64"))
    got = pre.run(pre.init_state(params), {"tokens": tokens})["logits"]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert decode(load_spec(spec), 2, 40, "float64").value("kv.0.k").shape == (2, 5, 16)


@pytest.mark.parametrize("positions", POSITIONS)
def test_decode_beyond_the_window_reads_the_rolling_cache_and_equals_the_forward(positions):
    """A window W = 5 and a context of 13: the decode step's cache holds the last W positions (the last W-1 rows of a
    prefill of 12 tokens, oldest first, and the new token's); its logits equal the training forward's at position 12
    for every position kind: the absolute tables are read at position 12 (not the cache slot 4), RoPE rotates by 12
    and ALiBi's distances are those of the tokens."""
    spec = _with(positions, attention_window=5)
    params = _params(spec)
    tokens = np.random.default_rng(3).integers(0, spec.vocab_size, (2, 13)).astype(np.int32)
    fwd = compile(build(spec, 2, 13, dtype="float64"))
    want = fwd.run(fwd.init_state(params), {"tokens": tokens, "targets": tokens})["logits"][:, 12]
    pre = compile(prefill(spec, 2, 12, dtype="float64"))
    cache = pre.init_state(params)
    pre.run(cache, {"tokens": tokens[:, :12]})
    dec = compile(decode(spec, 2, 13, dtype="float64"))
    state = dec.init_state(params)
    for k in state:
        if k.startswith("kv."):
            assert state[k].shape[1] == 5
            state[k][:, :4] = cache[k][:, 8:12]  # positions 8..11 in slots 0..3; the step writes 12 into slot 4
    got = dec.run(state, {"tokens": tokens[:, 12:]})["logits"][:, 0]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_decode_past_the_learned_table_is_refused_naming_it():
    with pytest.raises(ShapeError, match="learned position table has max_seq_len rows"):
        decode(_with("learned"), 1, 17)
    from tilegraph.graph.build import _absolute_positions  # the guard inside, for any caller
    from tilegraph.graph.ir import Graph

    spec = _with("learned")
    g = Graph("g")
    x = g.input("x", (1, 2, spec.hidden_size), "float64")
    table = {"pos_embedding": g.param("pos_embedding", (spec.max_seq_len, spec.hidden_size), "float64")}
    with pytest.raises(ShapeError, match="positions 15..16 lie beyond the learned position table of 16 rows"):
        _absolute_positions(g, spec, table, x, 1, 2, "float64", offset=15)


def test_position_ops_offset_rows():
    """position_ids and sinusoidal with an offset are rows offset.. of the tables without one."""
    from tilegraph.ops import get_op

    ids = get_op("position_ids").reference([], {"batch": 2, "seq": 3, "offset": 5})[0]
    np.testing.assert_array_equal(ids, [[5, 6, 7]] * 2)
    whole = get_op("sinusoidal").reference([], {"batch": 1, "seq": 9, "hidden": 6, "dtype": "float64", "offset": 0})
    part = get_op("sinusoidal").reference([], {"batch": 2, "seq": 3, "hidden": 6, "dtype": "float64", "offset": 6})
    np.testing.assert_array_equal(part[0][0], whole[0][0, 6:9])
    np.testing.assert_array_equal(part[0][1], whole[0][0, 6:9])
    with pytest.raises(ShapeError, match="offset=-1"):
        get_op("position_ids").infer([], {"batch": 1, "seq": 1, "offset": -1})


def test_alibi_decode_reference_by_loops():
    """attention_decode with alibi, from the definition: query t at position start+t, softmax over cache positions
    j <= start+t of q.k_j * scale - slope_h * (start + t - j)."""
    import math

    from tilegraph.ops import get_op
    from tilegraph.ops.attention import alibi_slopes

    rng = np.random.default_rng(4)
    b, t, c, heads, kv, d, start = 2, 2, 7, 4, 2, 3, 3
    q, kc, vc = rng.standard_normal((b, t, heads * d)), rng.standard_normal((b, c, kv * d)), rng.standard_normal(
        (b, c, kv * d))
    (o,) = get_op("attention_decode").reference(
        [q, kc, vc], {"heads": heads, "kv_heads": kv, "scale": None, "start": start, "alibi": True})
    slopes = alibi_slopes(heads)
    for bi in range(b):
        for h in range(heads):
            g = h // (heads // kv)
            for ti in range(t):
                i = start + ti
                w = np.array([q[bi, ti, h * d:(h + 1) * d] @ kc[bi, j, g * d:(g + 1) * d] / math.sqrt(d)
                              - slopes[h] * (i - j) for j in range(i + 1)])  # fmt: skip
                p = np.exp(w - w.max()) / np.exp(w - w.max()).sum()
                np.testing.assert_allclose(o[bi, ti, h * d:(h + 1) * d], p @ vc[bi, : i + 1, g * d:(g + 1) * d],
                                           rtol=1e-12)  # fmt: skip


@pytest.mark.parametrize("mesh", ["n300", "t3k"])
@pytest.mark.parametrize("positions", ["learned", "sinusoidal", "alibi"])
@pytest.mark.parametrize("mode", ["prefill", "decode"])
def test_position_kinds_shard_in_inference(mode, positions, mesh):
    """Sharded prefill / decode steps equal one device's for the absolute tables and ALiBi (ALiBi attention runs
    replicated over TP: its slopes follow global head indices), as tests/test_mesh_equivalence.py checks rope."""
    from test_mesh_equivalence import _compare_inference

    spec = _with(positions, num_heads=4, num_kv_heads=2)
    graph = prefill(spec, 4, 8, dtype="float64") if mode == "prefill" else decode(spec, 4, 8, "float64")
    _compare_inference(graph, spec, mesh, params=_params(spec))  # rtol 1e-9, atol 1e-12 (float64)
