"""Plots of bench results: a roofline of the device, and time vs one shape option."""

from __future__ import annotations

from tilegraph.perf.devices import get_device
from tilegraph.perf.model import peak_flops


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(7, 4.5))


def roofline(results):
    """Achieved TFLOPS vs arithmetic intensity (flops per DRAM byte) for each kernel and its baseline, under the
    device's DRAM roof and the matmul peak at the fidelity each runs at."""
    import numpy as np

    fig, ax = _figure()
    dev = get_device(results[0].device)
    points = []
    for r in results:
        points.append((f"{r.kernel} (ours)", r.flops / max(r.kernel_dram_bytes, 1), r.flops / r.kernel_us / 1e6, "o"))
        points.append((f"{r.kernel}: {r.baseline}", r.flops / max(r.baseline_dram_bytes, 1),
                       r.flops / r.baseline_us / 1e6, "s"))
    lo = min(p[1] for p in points) / 4
    ridge = peak_flops(dev, "LoFi") / dev.dram_bytes_per_s  # where the highest roof flattens
    hi = max(max(p[1] for p in points), ridge) * 4
    ai = np.logspace(np.log10(lo), np.log10(hi), 200)
    for fid in sorted({r.fidelity for r in results} | {"LoFi", "HiFi4"}):
        peak = peak_flops(dev, fid) / 1e12
        ax.plot(ai, np.minimum(ai * dev.dram_bytes_per_s / 1e12, peak), lw=1, label=f"roof {fid} ({peak:.0f} TFLOPS)")
    for label, x, y, marker in points:
        ax.plot([x], [y], marker, ms=8, label=f"{label}: {y:.2f} TFLOPS")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (flop / DRAM byte)")
    ax.set_ylabel("TFLOPS")
    source = {r.source for r in results}
    ax.set_title(f"roofline, {dev.name} ({', '.join(sorted(source))}; DRAM {dev.dram_bytes_per_s / 1e9:.0f} GB/s)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def sweep_plot(results, option: str):
    fig, ax = _figure()
    for name in dict.fromkeys(r.kernel for r in results):
        rs = [r for r in results if r.kernel == name]
        xs = [r.shape[option] for r in rs]
        ax.plot(xs, [r.kernel_us for r in rs], "o-", label=f"{name} (ours)")
        ax.plot(xs, [r.baseline_us for r in rs], "s--", label=f"{name}: {rs[0].baseline}")
    ax.set_xlabel(option)
    ax.set_ylabel("time (us)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_title(f"{results[0].device}: time vs {option} ({', '.join(sorted({r.source for r in results}))})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return fig
