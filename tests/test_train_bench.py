"""`python -m tilegraph.train.bench --torch PYTHON`: the same-run PyTorch comparison fails with one clear line
when its Python cannot run the baseline, before any training step is timed."""

import sys
from pathlib import Path

import pytest
from tilegraph.train import bench


def test_torch_comparison_with_a_python_that_does_not_exist(tmp_path, capsys):
    missing = str(tmp_path / "no-python")
    assert bench.main(["--torch", missing]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --torch") and missing in err and "make bench-torch" in err


def test_torch_comparison_with_a_python_without_torch(capsys):
    assert bench.main(["--torch", sys.executable]) == 2  # the test venv has no torch
    err = capsys.readouterr().err
    assert "the PyTorch baseline failed" in err and "torch" in err.splitlines()[-1]


def test_torch_comparison_is_only_for_nano_trickster(capsys):
    tiny = Path(__file__).resolve().parent.parent / "specs" / "tiny-test.yaml"
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--spec", str(tiny), "--torch", sys.executable])
    assert exit_info.value.code == 2
    assert "--torch compares nano-trickster only" in capsys.readouterr().err
