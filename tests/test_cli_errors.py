"""Every failure a user can cause is one line on stderr and an exit code, from the CLI's one top-level handler
(issue 10): bad input (TilegraphError), bad numbers (argparse), files the OS refuses, out of memory, non-UTF-8
text, a closed output pipe; plus `fuzz --replay` validation, fuzz without a compiler, the TILEGRAPH_* notes and
the streamed sample output."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tilegraph.runtime import fuzz

from tilegraph.cli import env_notes, main

REPO = Path(__file__).resolve().parent.parent
TINY_SPEC = {
    "name": "tiny-cli", "vocab_size": 256, "hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 2,
    "mlp_hidden": 48, "norm_eps": 1.0e-5, "rope_base": 10000, "max_seq_len": 64, "tie_embeddings": True,
}  # fmt: skip


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("note: TILEGRAPH_")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def spec_file(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(TINY_SPEC))
    return p


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "r"
    spec = out.parent / "tiny.yaml"
    spec.write_text(yaml.safe_dump(TINY_SPEC))
    assert main(["train", str(spec), "--steps", "2", "--batch", "2", "--seq", "16", "--warmup", "1",
                 "--eval-batches", "1", "--out", str(out)]) == 0  # fmt: skip
    return out


# -- bad input: TilegraphError, exit 2 --------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["train", "describe", "lower"])
def test_a_binary_spec_file(tmp_path, capsys, command):
    p = tmp_path / "spec.yaml"
    p.write_bytes(bytes(range(256)) * 4)
    extra = ["--mesh", "n150"] if command == "lower" else []
    assert main([command, str(p), *extra]) == 2
    assert f"{p}: not a text file (byte 128 is not UTF-8); pass a YAML spec" in _one_line(capsys)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "SPEC", "--seed", "-1"], "argument --seed: -1 must be at least 0"),
        (["train", "SPEC", "--lr", "nan"], "argument --lr: nan must be a finite number >= 0"),
        (["train", "SPEC", "--steps", "0"], "argument --steps: 0 must be at least 1"),
        (["sample", "RUN", "--temperature", "nan"], "argument --temperature: nan must be a finite number >= 0"),
        (["sample", "RUN", "--temperature", "inf"], "argument --temperature: inf must be a finite number >= 0"),
        (["sample", "RUN", "--seed", "-5"], "argument --seed: -5 must be at least 0"),
        (["fuzz", "rmsnorm", "--examples", "1e9"], "argument --examples: '1e9' is not a whole number"),
        (["fuzz", "rmsnorm", "--seed", "-1"], "argument --seed: -1 must be at least 0"),
    ],
)
def test_bad_numbers_are_usage_errors(argv, message, spec_file, capsys):
    argv = [str(spec_file) if a == "SPEC" else a for a in argv]
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_non_utf8_prompt_is_taken_as_bytes(trained):
    # argv reaches Python with undecodable bytes as surrogates; a byte-level model takes the bytes themselves.
    proc = subprocess.run([sys.executable, "-m", "tilegraph", "sample", str(trained), "--prompt", b"\xff\xfeAB",
                           "--tokens", "3"], capture_output=True, timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("\ufffd\ufffdAB".encode())


def test_sample_streams_its_text(trained):
    """The first bytes arrive while the rest is still being generated (read before the process ends)."""
    proc = subprocess.Popen([sys.executable, "-m", "tilegraph", "sample", str(trained), "--prompt", "HELLO",
                             "--tokens", "400"], stdout=subprocess.PIPE)  # fmt: skip
    try:
        first = proc.stdout.read(5)
        still_running = proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
    assert first == b"HELLO" and still_running


def test_fuzz_replay_validation(tmp_path, capsys):
    good = {"op": "swiglu", "backend": "numpy", "case": {"m": 2, "k": 3, "n": 4, "max_k_block": 1, "max_n_block": 1,
            "dtype": "bfloat16", "grid": [1, 1], "scale": 1.0, "seed": 3}}  # fmt: skip
    cases = [
        ([1, 2], "expected an object with 'op' and 'case', got list"),
        ({**good, "op": "rmsnorm"}, "it is a case of swiglu, not of rmsnorm"),
        ({**good, "op": "linear"}, "op 'linear' has no fuzz cases"),
        ({**good, "case": {**good["case"], "m": -1}}, "field 'm' is -1; it must be a whole number in [1, 4096]"),
        ({**good, "case": {**good["case"], "m": 10**9}}, "field 'm' is 1000000000"),
        ({**good, "case": {**good["case"], "dtype": "float99"}}, "field 'dtype' is 'float99'"),
        ({**good, "case": {**good["case"], "grid": [0, 1]}}, "field 'grid' is [0, 1]"),
        ({**good, "case": {**good["case"], "scale": float("nan")}}, "field 'scale' is nan"),
        ({**good, "case": "m=2"}, "'case' must be an object of fields, got str"),
    ]
    for data, message in cases:
        p = tmp_path / "case.json"
        p.write_text(json.dumps(data))
        assert main(["fuzz", "--replay", str(p)]) == 2
        assert message in _one_line(capsys), data
    p.write_text(json.dumps(good))
    assert main(["fuzz", "--replay", str(p)]) == 0
    assert "PASS  worst err/bound" in capsys.readouterr().out


@pytest.mark.parametrize("op", sorted(fuzz.CASE_FIELDS))
def test_every_drawn_fuzz_case_passes_replay_validation(op):
    from hypothesis import given, settings

    @settings(max_examples=100, derandomize=True, database=None)
    @given(case=fuzz.case_strategy(op))
    def check(case):
        fuzz.check_case(op, json.loads(json.dumps(case)), "test")

    check()


def test_fuzz_without_a_compiler_is_an_environment_error_not_a_kernel_fail(tmp_path, monkeypatch, capsys):
    from tilegraph.kernels import jit
    from tilegraph.runtime import emulator

    monkeypatch.setattr(emulator, "CXX", str(tmp_path / "no-such-g++"))
    monkeypatch.setattr(jit, "CXX", str(tmp_path / "no-such-g++"))
    monkeypatch.setenv("TILEGRAPH_EMU_CACHE", str(tmp_path / "cache"))
    save = tmp_path / "saved"
    assert main(["fuzz", "rmsnorm", "--examples", "3", "--save-dir", str(save)]) == 2
    err = _one_line(capsys)
    assert "no-such-g++' was not found; install g++ or set CXX" in err and "FAIL" not in err
    assert not save.exists()  # no "failing case" saved


def test_fuzz_pass_line_says_what_the_numbers_are_relative_to(capsys):
    assert main(["fuzz", "swiglu", "--backend", "numpy", "--examples", "2"]) == 0
    out = capsys.readouterr().out
    assert "max rel err" in out and "(|err|/|ref|, large where ref ~ 0; for information)" in out
    assert "PASS: every element of all 2 cases within its error bound (worst at" in out


def test_env_notes_say_what_is_in_effect():
    env = {"TILEGRAPH_EMU_GRID": "4x2", "TILEGRAPH_CPU_CACHE": "/c", "TILEGRAPH_EMU_GIRD": "1", "PATH": "/bin"}
    notes = env_notes("train", env)
    assert notes == [
        "note: TILEGRAPH_CPU_CACHE=/c (cache folder of the compiled CPU kernels): in effect",
        ("note: TILEGRAPH_EMU_GIRD=1 is not a tilegraph setting and is ignored (known: TILEGRAPH_THREADS, "
         "TILEGRAPH_CPU_CACHE, TILEGRAPH_EMU_CACHE, TILEGRAPH_EMU_TIMING, TILEGRAPH_EMU_GRID, TILEGRAPH_EMU_DTYPE)"),
        ("note: TILEGRAPH_EMU_GRID=4x2 (core grid of Programs run on the emu backend (fuzz cases set their own)): "
         "ignored by `tilegraph train`"),
    ]


def test_env_notes_reach_stderr(spec_file, monkeypatch, capsys):
    monkeypatch.setenv("TILEGRAPH_EMU_DTYPE", "bfloat8_b")
    assert main(["describe", str(spec_file), "--seq", "32"]) == 0
    assert "note: TILEGRAPH_EMU_DTYPE=bfloat8_b" in capsys.readouterr().err


# -- files: FileError / OSError, one line ------------------------------------------------------------------------


@pytest.mark.parametrize("target, message", [
    ("missing/plan.json", "--json {p}: the folder {d} does not exist"),
    (".", "--json {p} is a folder; name a file"),
])  # fmt: skip
def test_lower_json_to_a_missing_folder_or_a_folder(tmp_path, capsys, target, message):
    p = tmp_path / target
    assert main(["lower", str(REPO / "specs/nano-trickster.yaml"), "--mesh", "n150", "--seq", "64", "--brief",
                 "--json", str(p)]) == 2  # fmt: skip
    assert message.format(p=p, d=p.parent) in _one_line(capsys)
    assert capsys.readouterr().out == ""  # refused before lowering


def test_lower_json_is_written_atomically(tmp_path, capsys):
    p = tmp_path / "plan.json"
    assert main(["lower", str(REPO / "specs/nano-trickster.yaml"), "--mesh", "n150", "--seq", "64", "--brief",
                 "--json", str(p)]) == 0  # fmt: skip
    assert json.loads(p.read_text())["mesh"] == "n150" and [q.name for q in tmp_path.iterdir()] == ["plan.json"]


def test_an_os_error_outside_tilegraph_checks_is_one_line(tmp_path, capsys, monkeypatch):
    """The handler's last line of defence: an OSError that no check anticipated still ends as one line with
    the path and a hint (a command is replaced by one that hits such an error)."""
    from tilegraph.commands import describe

    def refuse(args):
        raise PermissionError(13, "Permission denied", str(tmp_path / "x"))

    monkeypatch.setattr(describe, "run", refuse)
    assert main(["describe", "whatever.yaml"]) == 1
    assert f"tilegraph describe: error: {tmp_path / 'x'}: Permission denied; choose a folder you can write to" in (
        _one_line(capsys)
    )


# -- out of memory, pipes --------------------------------------------------------------------------------------


def test_a_batch_that_cannot_fit_in_memory(spec_file, tmp_path, capsys):
    out = tmp_path / "big"
    assert main(["train", str(spec_file), "--steps", "1", "--batch", "1000000000", "--seq", "64",
                 "--out", str(out)]) == 1  # fmt: skip
    err = _one_line(capsys)
    assert err.startswith("tilegraph train: error: out of memory (") and "smaller sizes (--batch, --seq" in err
    assert not out.exists()  # a run that never started leaves no folder


def test_output_into_a_closed_pipe_exits_quietly(trained):
    cmd = f"{sys.executable} -m tilegraph sample {trained} --tokens 2000 | head -c 10"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, timeout=300, check=False)
    assert proc.stderr == b"" and proc.returncode == 141 and len(proc.stdout) == 10


def test_a_long_fuzz_shows_progress(capsys):
    assert main(["fuzz", "swiglu", "--backend", "numpy", "--examples", "50", "--seed", "2"]) == 0
    err = capsys.readouterr().err
    assert "fuzz swiglu: 5/50 cases, worst err/bound so far" in err and "fuzz swiglu: 50/50 cases" in err
