"""Sliding-window flash attention on the emulator: hand-picked windows against the float64 reference (bounds of
runtime/fuzz.py), the skipped K chunks are really not read, and a kernel given no window is caught by the check.
The fuzz of tests/test_kern_emu.py also draws windows."""

from __future__ import annotations

import numpy as np
import pytest
from tilegraph.kernels.registry import DeviceOptions
from tilegraph.runtime import fuzz
from tilegraph.runtime.kernel_ops import run_kernel_op


@pytest.mark.parametrize("seq, window, q_chunk, k_chunk", [
    (100, 7, 32, 32),    # window inside one tile: the diagonal tile carries both masks
    (160, 45, 64, 32),   # window across a tile edge, Q chunk of two tiles
    (130, 1, 32, 64),    # each row sees only itself
    (200, 64, 32, 32),   # window a multiple of the tile
    (96, 33, 128, 32),   # one Q chunk covering the whole sequence
    (70, 100, 32, 32),   # window longer than the sequence
])
def test_window_cases(seq, window, q_chunk, k_chunk):
    case = {"dtype": "bfloat16", "grid": [2, 2], "scale": 1.0, "seed": seq + window, "batch": 1, "seq": seq,
            "kv_heads": 1, "group": 2, "head_dim": 32, "causal": True, "q_chunk": q_chunk, "k_chunk": k_chunk,
            "softmax_scale": None, "window": window}
    outcome = fuzz.run_case("attention", case, "emu")
    assert outcome.ok, outcome.worst


def _qkv(seq, d=32):
    rng = np.random.default_rng(7)
    return [rng.standard_normal((1, seq, d)).astype(np.float32) for _ in range(3)]


def test_chunks_left_of_the_window_are_not_read():
    """NaN in V at key 0: a masked-but-read key still poisons P V (0 * NaN), so rows whose Q chunk reads K chunk 0
    are poisoned and the others are clean only if the kernel skips that chunk. Window 32, chunks of 32: Q chunks 0 and
    1 (rows < 64) read chunk 0, later ones start at chunk >= 1."""
    q, k, v = _qkv(256)
    v[0, 0, :] = np.nan
    attrs = {"heads": 1, "kv_heads": 1, "causal": True, "scale": None, "window": 32}
    opts = DeviceOptions("bfloat16", (2, 2), {"q_chunk": 32, "k_chunk": 32})
    o, _ = run_kernel_op("attention", [q, k, v], attrs, "emu", opts)
    poisoned = ~np.isfinite(o[0]) | (np.abs(o[0]) > 1e6)  # the Wormhole datapath turns NaN into inf / huge values
    assert poisoned[:32].all()
    assert not poisoned[64:].any()
    clean = v.copy()
    clean[0, 0, :] = 0.0
    held = fuzz.device_values([q, k, clean], "attention", "bfloat16", "emu")
    ref = fuzz.reference("attention", held, attrs)[0]
    bound = fuzz.error_bounds("attention", held, attrs, fuzz.reference("attention", held, attrs), "emu")[0]
    assert np.all(np.abs(o[0, 64:] - ref[0, 64:]) <= bound[0, 64:])


def test_kernel_without_the_window_fails_the_check():
    q, k, v = _qkv(128)
    attrs = {"heads": 1, "kv_heads": 1, "causal": True, "scale": None, "window": 16}
    opts = DeviceOptions("bfloat16", (1, 1), {"q_chunk": 32, "k_chunk": 32})
    held = fuzz.device_values([q, k, v], "attention", "bfloat16", "emu")
    refs = fuzz.reference("attention", held, attrs)
    bound = fuzz.error_bounds("attention", held, attrs, refs, "emu")[0]
    no_window = run_kernel_op("attention", held, {**attrs, "window": None}, "emu", opts)[0]
    assert not np.all(np.abs(no_window - refs[0]) <= bound)
    windowed = run_kernel_op("attention", held, attrs, "emu", opts)[0]
    assert np.all(np.abs(windowed - refs[0]) <= bound)


def test_replayed_case_window_is_checked():
    from tilegraph.errors import DataError

    case = {"dtype": "bfloat16", "grid": [1, 1], "scale": 1.0, "seed": 0, "batch": 1, "seq": 40, "kv_heads": 1,
            "group": 1, "head_dim": 32, "causal": True, "q_chunk": 32, "k_chunk": 32, "softmax_scale": None}
    assert fuzz.check_case("attention", dict(case), "t") == case  # saved before windows existed: still replays
    fuzz.check_case("attention", {**case, "window": 5}, "t")
    with pytest.raises(DataError, match=r"field 'window' is 0; it must be null or a whole number in \[1, "):
        fuzz.check_case("attention", {**case, "window": 0}, "t")
