"""Each custom kernel against ttnn's built-in, per device: measured with ttnn on a card, modelled without one
(tilegraph.perf.bench; the same numbers as `tilegraph bench KERNEL --device D`). pytest-benchmark times the
run of the model itself (emulator + model, on this host); the device times are in each benchmark's extra_info
and printed.

    .venv/bin/python -m pytest bench/test_bench_device.py --benchmark-only -s
"""

from __future__ import annotations

import pytest
from tilegraph.kernels.registry import KERNEL_OPS

from tilegraph.perf.bench import BENCH_KERNELS, PRESETS, run_bench

KERNELS = [k for k in KERNEL_OPS if k in BENCH_KERNELS]


@pytest.mark.parametrize("device", ["n150", "n300", "p150"])
@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_vs_ttnn_builtin(benchmark, kernel, device):
    result = benchmark.pedantic(lambda: run_bench(kernel, PRESETS["nano"], device), rounds=1, iterations=1)
    benchmark.extra_info.update(result.to_json())
    print(f"\n{kernel} on {device} ({result.source}): ours {result.kernel_us:.1f} us ({result.bound}), "
          f"{result.baseline} {result.baseline_us:.1f} us ({result.baseline_bound}), "
          f"baseline/ours {result.baseline_us / result.kernel_us:.2f}x")
    assert result.kernel_us > 0 and result.baseline_us > 0
