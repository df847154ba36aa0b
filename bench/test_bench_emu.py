"""Speed of the kernel-API emulator: flash attention (B=1, H=8, S=512, D=64, causal, bf16, 8x8 grid) against
the numpy float64 reference of the same op, measured in the same run.

The ratio says how many times slower the emulated card (host threads per core, tile-by-tile math with the data
formats' rounding) is than plain numpy on this machine. Compiles are cached and warmed before timing.

    .venv/bin/python -m pytest bench/test_bench_emu.py --benchmark-only -s
"""

from __future__ import annotations

import numpy as np
import pytest
from tilegraph.runtime.kernel_ops import run_kernel_op
from timing import best_of, stat

B, H, S, D = 1, 8, 512, 64


def attention_reference(q, k, v):
    qh, kh, vh = (x.reshape(B, S, H, D).transpose(0, 2, 1, 3).astype(np.float64) for x in (q, k, v))
    s = qh @ kh.transpose(0, 1, 3, 2) / np.sqrt(D) + np.triu(np.full((S, S), -np.inf), 1)
    p = np.exp(s - s.max(-1, keepdims=True))
    return ((p / p.sum(-1, keepdims=True)) @ vh).transpose(0, 2, 1, 3).reshape(B, S, H * D)


@pytest.fixture(scope="module")
def qkv():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((B, S, H * D)).astype(np.float32) for _ in range(3))
    run_kernel_op("attention", [q, k, v], {"heads": H, "causal": True})  # compile + warm the cache
    return q, k, v


def test_emu_attention_s512(benchmark, qkv):
    q, k, v = qkv
    ref_s = best_of(lambda: attention_reference(q, k, v))
    out = benchmark.pedantic(lambda: run_kernel_op("attention", [q, k, v], {"heads": H, "causal": True}),
                             rounds=3, iterations=1)
    emu_s = stat(benchmark)
    err = np.abs(out[0] - attention_reference(q, k, v)).max()
    print(f"\nattention B={B} H={H} S={S} D={D} causal bf16: emulator {emu_s:.3f} s, numpy float64 reference "
          f"{ref_s:.4f} s, ratio {emu_s / ref_s:.1f}x; max abs error {err:.4f}")
    assert err < 0.1  # bf16 inputs/outputs on O(1) values: loose sanity bound, accuracy is fuzzed elsewhere
