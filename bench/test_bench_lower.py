"""Time to lower llama-3-70b's training step onto galaxy (build, autodiff, shard, memory plan + schedule, cost).

Baseline in the same run: building and differentiating the graph alone (what any lowering must at least do), so the
ratio is what sharding, planning and costing add on top. The whole pipeline has to stay well under 5 s.

    .venv/bin/python -m pytest bench/test_bench_lower.py --benchmark-only -s
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tilegraph.graph import training_step

from tilegraph.commands.lower import lower

SPEC = str(Path(__file__).resolve().parent.parent / "specs" / "llama-3-70b.yaml")


def _interleaved_medians(a, b, n: int = 3) -> tuple[float, float]:
    """Median seconds of a and b, run alternately so both see the same machine load (the CPU is shared)."""
    ta, tb = [], []
    for _ in range(n):
        for fn, times in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return float(np.median(ta)), float(np.median(tb))


def test_lower_llama_70b_galaxy_train(benchmark):
    def full():
        return lower(SPEC, "galaxy", None, None, train=True)

    def baseline():
        return training_step(SPEC, 4, 8192)

    t_full, t_base = _interleaved_medians(full, baseline)
    sharded = benchmark.pedantic(full, rounds=1, iterations=1)
    print(
        f"\nllama-3-70b train step on galaxy: {len(sharded[4].nodes)} steps; lower {t_full:.2f} s, "
        f"build+autodiff alone {t_base:.2f} s, ratio {t_full / t_base:.2f}"
    )
