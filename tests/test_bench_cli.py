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
