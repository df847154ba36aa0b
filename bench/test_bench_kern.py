"""Emulated custom kernels vs the numpy ops, measured in the same run: RMSNorm at hidden 8192 and the fused SwiGLU
(both bf16 on an 8x8 grid). The ratio is how much slower the emulated card is than numpy float32 on this host.

    .venv/bin/python -m pytest bench/test_bench_kern.py --benchmark-only -s
"""

from __future__ import annotations

import numpy as np
import pytest
from tilegraph.kernels.registry import DeviceOptions
from tilegraph.runtime.fuzz import numpy_backend_outputs
from tilegraph.runtime.kernel_ops import run_kernel_op
from timing import best_of, stat

CASES = {
    "rmsnorm 256x8192": ("rmsnorm", lambda r: [r.standard_normal((256, 8192)), 1 + r.standard_normal(8192) / 4],
                         {"eps": 1e-5}),
    "swiglu 128x1024->2816": ("swiglu", lambda r: [r.standard_normal((128, 1024)),
                                                   r.standard_normal((1024, 2816)) / 32,
                                                   r.standard_normal((1024, 2816)) / 32], {}),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_emulated_kernel_vs_numpy(benchmark, name):
    op, make, attrs = CASES[name]
    inputs = [a.astype(np.float32) for a in make(np.random.default_rng(0))]
    opts = DeviceOptions("bfloat16", (8, 8))
    run_kernel_op(op, inputs, attrs, "emu", opts)  # compile + warm the kernel cache
    numpy_s = best_of(lambda: numpy_backend_outputs(op, inputs, attrs))
    got = benchmark.pedantic(lambda: run_kernel_op(op, inputs, attrs, "emu", opts), rounds=3, iterations=1)
    emu_s = stat(benchmark)
    want = numpy_backend_outputs(op, inputs, attrs)
    print(f"\n{name}: emulator {emu_s:.3f} s, numpy float32 {numpy_s:.4f} s, ratio {emu_s / numpy_s:.0f}x; "
          f"max abs diff {np.abs(got[0] - want[0]).max():.3g}")
    assert np.allclose(got[0], want[0], rtol=2**-6, atol=2**-6 * np.abs(want[0]).max())
