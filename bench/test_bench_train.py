"""Training throughput of the default recipe (nano-trickster, batch 16 x seq 256, AdamW) on the numpy backend.

The baseline, measured in the same run, is a float32 GEMM workload with the FLOPs of one step (the step's
weight matmuls at their real shapes plus the attention FLOPs as more of them; see tilegraph.train.bench).
Printed: tokens/s of both and their ratio (1.0 = a training step costs no more than its matmuls).

    .venv/bin/python -m pytest bench/test_bench_train.py --benchmark-only -s
    .venv/bin/python -m tilegraph.train.bench          # the same numbers without pytest
"""

from __future__ import annotations

import time

import pytest
from tilegraph.graph import load_spec
from tilegraph.train.bench import DEFAULT_SPEC, GemmBaseline, make_training_step

BATCH, SEQ = 16, 256


@pytest.fixture(scope="module")
def spec():
    return load_spec(DEFAULT_SPEC)


@pytest.fixture(scope="module")
def gemm_seconds(spec):
    gemms = GemmBaseline(spec, BATCH, SEQ)
    gemms.run()  # warm BLAS and page in the operands
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        gemms.run()
        times.append(time.perf_counter() - t0)
    return sorted(times)[1]


def test_gemm_baseline(benchmark, spec):
    gemms = GemmBaseline(spec, BATCH, SEQ)
    gemms.run()
    benchmark.pedantic(gemms.run, rounds=3, iterations=1)
    median = benchmark.stats.stats.median
    flops = gemms.flops
    benchmark.extra_info["tokens_per_s"] = BATCH * SEQ / median
    print(f"\nGEMM-only bound: {BATCH * SEQ / median:,.0f} tokens/s ({flops / median / 1e9:.0f} GFLOP/s)")


def test_training_step_tokens_per_s(benchmark, spec, gemm_seconds):
    step = make_training_step(spec, BATCH, SEQ)
    step()  # the first call allocates buffers
    step()
    result = benchmark.pedantic(step, rounds=5, iterations=1)
    assert result.loss > 0  # it trained (finite, positive cross-entropy)
    median = benchmark.stats.stats.median
    tokens_per_s = BATCH * SEQ / median
    benchmark.extra_info.update(
        tokens_per_s=tokens_per_s, gemm_tokens_per_s=BATCH * SEQ / gemm_seconds, ratio=gemm_seconds / median
    )
    print(
        f"\ntraining: {tokens_per_s:,.0f} tokens/s; GEMM-only bound {BATCH * SEQ / gemm_seconds:,.0f} tokens/s; "
        f"ratio {gemm_seconds / median:.2f} (1.0 = the step costs only its matmuls)"
    )
