"""Training throughput of the default recipe (nano-trickster, batch 16 x seq 256, AdamW) on the numpy backend.

The baseline, measured in the same run, is a float32 GEMM workload with the FLOPs of one step (the step's
weight matmuls at their real shapes plus the attention FLOPs as more of them; see tilegraph.train.bench).
Printed: tokens/s of both and their ratio (1.0 = a training step costs no more than its matmuls).

    .venv/bin/python -m pytest bench/test_bench_train.py --benchmark-only -s
    .venv/bin/python -m tilegraph.train.bench          # the same numbers without pytest

With a PyTorch Python (`make bench-torch` creates .venv-torch; or TILEGRAPH_TORCH_PYTHON), the step is also
compared with the PyTorch eager reference, bench/torch_baseline.py.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import timing
from tilegraph.graph import load_spec
from tilegraph.train.bench import DEFAULT_SPEC, GemmBaseline, make_training_step, torch_tokens_per_second
from timing import stat

BATCH, SEQ = (2, 64) if timing.SMOKE else (16, 256)  # the smoke run only checks that the suite works


@pytest.fixture(scope="module")
def spec():
    return load_spec(DEFAULT_SPEC)


@pytest.fixture(scope="module")
def gemm_seconds(spec):
    gemms = GemmBaseline(spec, BATCH, SEQ)
    gemms.run()  # warm BLAS and page in the operands
    times = []
    for _ in range(1 if timing.SMOKE else 3):
        t0 = time.perf_counter()
        gemms.run()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]  # the median


def test_gemm_baseline(benchmark, spec):
    gemms = GemmBaseline(spec, BATCH, SEQ)
    gemms.run()
    benchmark.pedantic(gemms.run, rounds=3, iterations=1)
    median = stat(benchmark, "median")
    flops = gemms.flops
    benchmark.extra_info["tokens_per_s"] = BATCH * SEQ / median
    print(f"\nGEMM-only bound: {BATCH * SEQ / median:,.0f} tokens/s ({flops / median / 1e9:.0f} GFLOP/s)")


def test_training_step_tokens_per_s(benchmark, spec, gemm_seconds):
    step = make_training_step(spec, BATCH, SEQ)
    step()  # the first call allocates buffers
    step()
    result = benchmark.pedantic(step, rounds=5, iterations=1)
    assert result.loss > 0  # it trained (finite, positive cross-entropy)
    median = stat(benchmark, "median")
    tokens_per_s = BATCH * SEQ / median
    benchmark.extra_info.update(
        tokens_per_s=tokens_per_s, gemm_tokens_per_s=BATCH * SEQ / gemm_seconds, ratio=gemm_seconds / median
    )
    print(
        f"\ntraining: {tokens_per_s:,.0f} tokens/s; GEMM-only bound {BATCH * SEQ / gemm_seconds:,.0f} tokens/s; "
        f"ratio {gemm_seconds / median:.2f} (1.0 = the step costs only its matmuls)"
    )


TORCH_PYTHON = Path(os.environ.get("TILEGRAPH_TORCH_PYTHON", Path(__file__).resolve().parent.parent / ".venv-torch"
                                   / "bin" / "python"))


@pytest.mark.skipif(not TORCH_PYTHON.exists(), reason=f"no PyTorch Python at {TORCH_PYTHON} (run `make bench-torch`, "
                                                       "or set TILEGRAPH_TORCH_PYTHON)")
def test_training_step_vs_pytorch_eager(benchmark, spec):
    """The same step in PyTorch eager (bench/torch_baseline.py, its own process), timed before and after ours;
    the ratio is against the faster of its two runs."""
    torch_before = torch_tokens_per_second(str(TORCH_PYTHON), BATCH, SEQ, steps=5)
    step = make_training_step(spec, BATCH, SEQ)
    step()
    step()
    benchmark.pedantic(step, rounds=5, iterations=1)
    torch_after = torch_tokens_per_second(str(TORCH_PYTHON), BATCH, SEQ, steps=5)
    ours, theirs = BATCH * SEQ / stat(benchmark, "median"), max(torch_before, torch_after)
    benchmark.extra_info.update(tokens_per_s=ours, torch_tokens_per_s=theirs, ratio=ours / theirs)
    print(f"\ntraining: {ours:,.0f} tokens/s; PyTorch eager {theirs:,.0f} tokens/s "
          f"(runs {torch_before:,.0f}, {torch_after:,.0f}); ratio {ours / theirs:.2f}")
