"""The performance model: the emulator's counters, the cost model against published tt-metal measurements."""

import numpy as np
import pytest

from tilegraph.perf import baselines
from tilegraph.perf.counters import ThreadCounters
from tilegraph.perf.devices import get_device
from tilegraph.perf.model import estimate, peak_flops
from tilegraph.perf.validation import PUBLISHED, PUBLISHED_SDPA, RATIO_BAND, modelled


@pytest.mark.parametrize("row", PUBLISHED + PUBLISHED_SDPA, ids=lambda r: f"{r.device}-{r.config}")
def test_model_within_band_of_published_matmul(row):
    ratio = row.time_ns / 1e3 / modelled(row).time_us
    assert RATIO_BAND[0] <= ratio <= RATIO_BAND[1], ratio


def test_matmul_bound_moves_with_fidelity_and_format():
    dev = get_device("n150")
    hifi4 = estimate(baselines.matmul_2d(4096, 4096, 4096, dev, "bfloat16", "HiFi4"), dev, {}, "HiFi4")
    lofi = estimate(baselines.matmul_2d(4096, 4096, 4096, dev, "bfloat16", "LoFi"), dev, {}, "LoFi")
    assert hifi4.bound == "compute" and lofi.bound == "unpack"
    # HiFi4 at the matmul engine's rate: 128^3 tile products / 64 cores * 64 cycles at 1 GHz
    assert hifi4.time_s == pytest.approx(128**3 / 64 * 64 / 1e9, rel=1e-4)  # + one init
    assert 0.9 < hifi4.utilization <= 1.0


def test_dram_bound_and_bank_imbalance():
    """64 cores reading 4.5 MB each: DRAM-bound (one core's NoC port moves 4.5 MB in 0.14 ms, DRAM 288 MB in 1 ms)."""
    dev = get_device("n150")

    def readers(page_classes):
        per = {"noc.read.dram.bytes": 4_500_000, "noc.read.dram.n": 2200,
               **{f"dram.page_class.{k}.bytes": v for k, v in page_classes.items()}}
        return [ThreadCounters((i % 8, i // 8), "reader", "r", per) for i in range(64)]

    est = estimate(readers({k: 4_500_000 // 24 for k in range(24)}), dev, {}, "HiFi4")
    assert est.bound == "DRAM" and est.dram_time_s == pytest.approx(64 * 4.5e6 / 288e9, rel=1e-5)
    # all pages in one bank: served at 1/12 of the bandwidth
    est1 = estimate(readers({0: 4_500_000}), dev, {}, "HiFi4")
    assert est1.bound == "DRAM" and est1.dram_time_s == pytest.approx(12 * 64 * 4.5e6 / 288e9)


def test_single_buffered_cb_serialises_producer_and_consumer():
    dev = get_device("n150")
    r = ThreadCounters((0, 0), "reader", "r", {"noc.read.l1.bytes": 32_000, "noc.read.l1.n": 1,
                                               "cb.3.pushed": 10, "cb.3.reserve_max": 4})
    c = ThreadCounters((0, 0), "compute", "c", {"fpu.matmul.HiFi4": 20, "cb.3.popped": 10, "cb.3.wait_max": 4})
    double = estimate([r, c], dev, {(0, 0): {3: 8}}, "HiFi4")
    single = estimate([r, c], dev, {(0, 0): {3: 4}}, "HiFi4")
    assert single.time_s == pytest.approx(double.cores[0].streams["reader"] + double.cores[0].streams["compute"])
    assert single.bound.startswith("CB stall (CB 3") and not double.bound.startswith("CB stall")


def test_cb_pushed_once_per_run_is_not_a_stall():
    # A constant (a reduce scaler) goes through its one-page CB once: producer and consumer never take turns on it.
    dev = get_device("n150")
    r = ThreadCounters((0, 0), "reader", "r", {"noc.read.l1.bytes": 32_000, "noc.read.l1.n": 1,
                                               "cb.4.pushed": 1, "cb.4.reserve_max": 1})
    c = ThreadCounters((0, 0), "compute", "c", {"fpu.matmul.HiFi4": 20, "cb.4.popped": 1, "cb.4.wait_max": 1})
    once = estimate([r, c], dev, {(0, 0): {4: 1}}, "HiFi4")
    assert not once.bound.startswith("CB stall")
    r.counts["cb.4.pushed"] = c.counts["cb.4.popped"] = 2  # two blocks through one page: they take turns
    assert estimate([r, c], dev, {(0, 0): {4: 1}}, "HiFi4").bound.startswith("CB stall (CB 4")


def test_peak_flops_matches_gemm_report():
    # GEMM_FLOPS.md: 4 TFLOPS per Wormhole core at LoFi, 1 at HiFi4; 8x8 grid
    assert peak_flops(get_device("n150"), "LoFi") == pytest.approx(64 * 4.096e12)
    assert peak_flops(get_device("p150"), "HiFi4") == pytest.approx(130 * 1.35e9 * 4096 / 4)


def test_emulator_counts_what_the_kernels_do():
    """The counters of a real run: swiglu's matmul tile products, DRAM bytes, one thread per (core, kernel)."""
    from tilegraph.kernels.registry import DeviceOptions, get_kernel_op
    from tilegraph.runtime.emulator import run_program_counted

    rng = np.random.default_rng(0)
    m, k, n = 64, 128, 64
    x = rng.standard_normal((m, k)).astype(np.float32)
    w1 = rng.standard_normal((k, n)).astype(np.float32) * 0.1
    w3 = rng.standard_normal((k, n)).astype(np.float32) * 0.1
    desc, dev_inputs = get_kernel_op("swiglu").program([x, w1, w3], {}, DeviceOptions(grid=(2, 1)))
    _, threads = run_program_counted(desc, dev_inputs)
    assert {(t.core, t.role) for t in threads} == {((x_, 0), r) for x_ in range(2)
                                                   for r in ("reader", "compute", "writer")}
    fid = desc.compute_config.math_fidelity
    products = sum(t.get(f"fpu.matmul.{fid}") for t in threads)
    assert products == 2 * (m // 32) * (n // 32) * (k // 32)  # x W1 and x W3, every output tile over all of K
    written = sum(t.get("noc.write.dram.bytes") for t in threads)
    assert written == (m // 32) * (n // 32) * 2048
    page_bytes = sum(t.get(f"dram.page_class.{c}.bytes") for t in threads for c in range(24))
    assert page_bytes == sum(t.get("noc.read.dram.bytes") + t.get("noc.write.dram.bytes") for t in threads)
