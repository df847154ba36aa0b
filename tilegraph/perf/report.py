"""Markdown table of every benchmarked kernel on n150 and p150 at the nano-trickster and llama-3-8b shapes.

    .venv/bin/python -m tilegraph.perf.report
"""

from __future__ import annotations

import sys

from tilegraph.perf.bench import BENCH_KERNELS, PRESETS, run_bench


def rows(devices=("n150", "p150"), presets=("nano", "llama3-8b"), kernels=None):
    for kernel in kernels or BENCH_KERNELS:
        for preset in presets:
            for device in devices:
                yield preset, run_bench(kernel, PRESETS[preset], device, allow_card=False)


def markdown(**kw) -> str:
    lines = ["| kernel | shapes | device | ours (us) | bound | util | ttnn built-in (us) | its bound | built-in / ours |",
             "|---|---|---|---:|---|---:|---:|---|---:|"]
    for preset, r in rows(**kw):
        lines.append(f"| {r.kernel} | {preset} | {r.device} | {r.kernel_us:.1f} | {r.bound} | "
                     f"{100 * r.utilization:.1f}% | {r.baseline_us:.1f} | {r.baseline_bound} | "
                     f"{r.baseline_us / r.kernel_us:.2f}x |")
        print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(kernels=sys.argv[1:] or None))
