"""Timing helpers shared by the benchmark suites. The machines are shared and noisy, so every suite compares
against a baseline measured in the same run: alternate the candidates, or keep the best of a few runs."""

from __future__ import annotations

import time

import numpy as np

# Set by bench/conftest.py under `pytest bench --benchmark-disable` (the smoke run of `make test`): every
# function runs once and no timing is reported (`stat` is NaN), so the suites only check that they still work.
SMOKE = False


def stat(benchmark, name: str = "min") -> float:
    """Seconds of pytest-benchmark's statistic `name`, NaN when benchmarking is disabled (smoke run)."""
    return float("nan") if benchmark.stats is None else float(getattr(benchmark.stats.stats, name))


def interleaved_medians(fns, n: int = 7) -> list[float]:
    """Median seconds of each function, run alternately so that all see the same machine load."""
    times = [[] for _ in fns]
    for _ in range(1 if SMOKE else n):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [float(np.median(ts)) for ts in times]


def best_of(fn, n: int = 3) -> float:
    """Fastest of n runs, in seconds (the least disturbed by other work on the machine)."""
    best = float("inf")
    for _ in range(1 if SMOKE else n):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
