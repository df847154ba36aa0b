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


@pytest.mark.parametrize("seq", [1, 5, 8])
def test_prefill_then_decode_equal_the_training_forward(seq):
    spec = load_spec(SPEC)
    params = init_params(spec, seed=0, dtype="float64")
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


def test_chunked_prefill_writes_the_same_cache_and_logits():
    """Two chunks of 4 (the second attends to the cache the first wrote) equal one prefill of 8."""
    from tilegraph.graph.inference import prefill_chunk

    spec = load_spec(SPEC)
    params = init_params(spec, seed=0, dtype="float64")
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
