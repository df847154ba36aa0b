"""`tilegraph bench`: modelled without a card and saying so, the JSON keys, the one-line errors."""

import json

from tilegraph.cli import main


def test_bench_json_modelled(tmp_path, capsys):
    out = tmp_path / "r.json"
    plot = tmp_path / "roof.png"
    assert main(["bench", "rmsnorm", "--tokens", "256", "--hidden", "512", "--device", "p150", "--model",
                 "--json", str(out), "--plot", str(plot)]) == 0
    text = capsys.readouterr().out
    assert "MODELLED" in text and "ttnn.rms_norm" in text
    r = json.loads(out.read_text())
    for key in ("kernel_us", "baseline_us", "bound", "utilization", "source"):
        assert key in r
    assert r["source"] == "modelled" and r["device"] == "p150" and r["shape"] == {"tokens": 256, "hidden": 512}
    assert r["kernel_us"] > 0 and r["baseline_us"] > 0 and 0 < r["utilization"] < 1
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_bench_sweep_writes_one_result_per_value(tmp_path, capsys):
    out = tmp_path / "s.json"
    assert main(["bench", "rmsnorm", "--hidden", "256", "--sweep", "tokens=64,256", "--model",
                 "--json", str(out)]) == 0
    rs = json.loads(out.read_text())
    assert [r["shape"]["tokens"] for r in rs] == [64, 256]
    # four times the rows: the DRAM-bound norm cannot get faster
    assert rs[1]["kernel_us"] >= rs[0]["kernel_us"]


def test_bench_errors_are_one_line(capsys):
    assert main(["bench", "conv2d"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no custom kernel 'conv2d'" in err[0] and "rmsnorm" in err[0]
    assert main(["bench", "swiglu", "--sweep", "tokens="]) == 2
    assert "OPTION=V1,V2" in capsys.readouterr().err


SMALL = {"tokens": 64, "hidden": 64, "ffn": 96, "batch": 1, "seq": 64, "heads": 2, "kv_heads": 1, "head_dim": 32}


def test_every_custom_kernel_benches_modelled():
    """`tilegraph bench` covers the whole kernel registry, backward kernels included (a new kernel without a
    BenchKernel fails here)."""
    from tilegraph.kernels.registry import KERNEL_OPS

    from tilegraph.perf.bench import run_bench

    for name in KERNEL_OPS:
        r = run_bench(name, SMALL, "n150", allow_card=False)
        assert r.source == "modelled" and r.kernel_us > 0 and r.baseline_us > 0, name
        assert r.kernel_dram_bytes > 0 and r.baseline_dram_bytes > 0, name


def test_swiglu_bwd_counts_the_matmuls_after_its_program(monkeypatch):
    """swiglu_bwd's kernel op is our gate program then four ttnn matmuls and an add (device_finish): the bench
    time is the program's plus those ops' (modelled as ttnn's), not the program alone."""
    import dataclasses

    from tilegraph.perf import baselines, bench
    from tilegraph.perf.devices import get_device
    from tilegraph.perf.model import estimate

    dev = get_device("n150")
    full = bench.run_bench("swiglu_bwd", SMALL, "n150", allow_card=False)
    monkeypatch.setitem(bench.BENCH_KERNELS, "swiglu_bwd",
                        dataclasses.replace(bench.BENCH_KERNELS["swiglu_bwd"], finish=None))
    program_only = bench.run_bench("swiglu_bwd", SMALL, "n150", allow_card=False)
    ops = baselines.swiglu_bwd_finish(SMALL["tokens"], SMALL["hidden"], SMALL["ffn"], dev)
    finish_us = sum(estimate(op, dev, baselines.double_buffered_cb_pages(op), "HiFi2").time_us for op in ops)
    assert abs(full.kernel_us - program_only.kernel_us - finish_us) < 1e-6 * full.kernel_us
    assert finish_us > 0
