"""`tilegraph fuzz` end to end (emu and numpy backends, save + --replay, errors) and the emu backend on a Program."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tilegraph.graph import Graph
from tilegraph.runtime import fuzz
from tilegraph.runtime.emu_backend import Executor
from tilegraph.runtime.ttnn_program import card_present

from tilegraph.cli import main
from tilegraph.compiler import Target, compile


@pytest.mark.parametrize("op", ["rmsnorm", "swiglu", "attention"])
def test_fuzz_command_passes_on_the_emulator(op, capsys, tmp_path):
    assert main(["fuzz", op, "--examples", "4", "--seed", "3", "--save-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{op} on emu: " in out and "max abs err" in out and "max rel err" in out and "PASS" in out
    # one line per numeric configuration drawn, each with its cases counted: together all of them
    counts = [int(line.split(": ")[1].split()[0]) for line in out.splitlines() if line.startswith("  dtype ")]
    assert counts and sum(counts) == 4
    assert not list(tmp_path.iterdir())  # nothing failed, nothing saved


def test_fuzz_command_numpy_backend(capsys):
    assert main(["fuzz", "swiglu", "--backend", "numpy", "--examples", "3"]) == 0
    assert "swiglu on numpy" in capsys.readouterr().out


def test_failing_case_is_saved_minimized_and_replays(tmp_path, capsys, monkeypatch):
    # Zero the float32 allowances so every numpy-backend case fails (float32 vs the float64 reference): the fuzz
    # must shrink, save the case, and --replay must rerun exactly that case and fail the same way. (The numpy
    # backend keeps this fast; shrinking takes many runs.)
    monkeypatch.setitem(fuzz.OUT_ROUNDING, "numpy", 0.0)
    monkeypatch.setattr(fuzz, "ACCUM_UNIT", 0.0)
    args = ["fuzz", "swiglu", "--backend", "numpy", "--examples", "5", "--seed", "1", "--save-dir", str(tmp_path)]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "FAIL (minimized)" in out
    (saved,) = tmp_path.glob("*.json")
    data = json.loads(saved.read_text())
    case = data["case"]
    assert data["backend"] == "numpy"
    assert case["m"] == 1 and case["n"] == 1  # shrunk to the smallest shape that still fails
    assert list(tmp_path.glob("*.npz"))
    assert main(["fuzz", "--replay", str(saved)]) == 1
    assert "replaying swiglu" in capsys.readouterr().out
    monkeypatch.undo()
    assert main(["fuzz", "--replay", str(saved)]) == 0  # with the real tolerances the same case passes


def test_fuzz_errors_are_one_line(capsys, tmp_path):
    assert main(["fuzz", "linear"]) == 2
    assert "no custom kernel" in capsys.readouterr().err
    assert main(["fuzz"]) == 2
    assert "name an op" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    assert main(["fuzz", "--replay", str(bad)]) == 2
    assert "cannot read a saved case" in capsys.readouterr().err


@pytest.mark.skipif(card_present(), reason="a card is present")
def test_fuzz_ttnn_backend_without_card(capsys):
    assert main(["fuzz", "rmsnorm", "--backend", "ttnn", "--examples", "1"]) == 2
    assert "needs a Tenstorrent card" in capsys.readouterr().err


def test_emu_backend_runs_kernel_steps_on_the_emulator_and_the_rest_on_numpy():
    g = Graph("mlp")
    x = g.input("x", (40, 96))
    gamma = g.param("gamma", (96,))
    w1, w3 = g.param("w1", (96, 80)), g.param("w3", (96, 80))
    h = g.call("rmsnorm", x, gamma, eps=1e-5, name="h")
    y = g.call("swiglu", h, w1, w3, name="y")
    z = g.call("add", y, y, name="z")
    g.output("z", z)
    program = compile(g, Target(backend="emu"))
    on_numpy = compile(g)
    assert [s.impl for s in program.steps] == ["kernel:rmsnorm", "kernel:swiglu", "numpy"]  # decided by place
    rng = np.random.default_rng(0)
    state = {"gamma": rng.standard_normal(96).astype(np.float32),
             "w1": (rng.standard_normal((96, 80)) / 10).astype(np.float32),
             "w3": (rng.standard_normal((96, 80)) / 10).astype(np.float32)}
    feeds = {"x": rng.standard_normal((40, 96)).astype(np.float32)}
    ex = Executor(program)
    assert ex.kernel_steps == ["rmsnorm", "swiglu"] and ex.fallback_steps() == ["add"]
    got = ex.run(state, feeds)["z"]
    want = on_numpy.run(state, feeds)["z"]
    np.testing.assert_array_equal(program.run(state, feeds)["z"], got)  # the program's own backend: "emu"
    # Two bf16 kernels in a row (bf16 input and output roundings): 2^-6 relative to the output's scale.
    np.testing.assert_allclose(got, want, rtol=2**-6, atol=2**-6 * np.abs(want).max())
    assert not np.array_equal(got, want)  # it really ran in bf16 on the emulator, not on numpy
