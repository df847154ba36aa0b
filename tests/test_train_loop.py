"""The training loop on a tiny model (tens of steps): learning, resume == uninterrupted, Ctrl-C, NaN guard,
mismatched checkpoints, the CLI's error handling, and sampling."""

import math
import signal
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import yaml
from tilegraph.train import loop
from tilegraph.train.checkpoint import RunCheckpoints, load_checkpoint

from tilegraph.cli import main as cli_main
from tilegraph.errors import DataError

# Byte-level data needs vocab 256; everything else is as small as possible so a step takes milliseconds.
TINY_SPEC = {
    "name": "tiny-train",
    "vocab_size": 256,
    "hidden_size": 32,
    "num_layers": 2,
    "num_heads": 4,
    "num_kv_heads": 2,
    "mlp_hidden": 48,
    "norm_eps": 1.0e-5,
    "rope_base": 10000,
    "max_seq_len": 64,
    "tie_embeddings": True,
}
TINY = loop.TrainConfig(steps=12, batch=4, seq=32, warmup=3, eval_interval=4, eval_batches=2, seed=5, keep=2)


def _request_ctrl_c_at(step):
    def hook(run):
        if run.step == step:
            signal.raise_signal(signal.SIGINT)  # the real Ctrl-C path: the loop's SIGINT handler

    return hook


def _params(run):
    return {k: v.copy() for k, v in run.state.items()}


def test_loss_goes_down(tmp_path):
    run = loop.start_run(
        TINY_SPEC, replace(TINY, steps=30, eval_interval=10, warmup=5, lr=3e-3), tmp_path / "r"
    )
    summary = loop.train(run)
    val = [v for _, v in run.history.val]
    assert val[0] < math.log(256)  # better than uniform over bytes after 10 steps
    assert val[-1] < val[0] - 0.3
    assert summary.steps_done == 30 and not summary.stopped_early
    assert (tmp_path / "r" / "loss.png").stat().st_size > 1000
    assert summary.tokens_per_second > 0


def test_resume_equals_uninterrupted(tmp_path):
    full = loop.start_run(TINY_SPEC, TINY, tmp_path / "full")
    loop.train(full)

    first = loop.start_run(TINY_SPEC, TINY, tmp_path / "split")
    summary = loop.train(first, on_step=_request_ctrl_c_at(6))
    assert summary.stopped_early and summary.steps_done == 6
    assert RunCheckpoints(tmp_path / "split").latest().name == "ckpt-step000006.safetensors"

    resumed = loop.resume_run(tmp_path / "split")
    assert resumed.step == 6
    loop.train(resumed)
    # Same seed, same batches, same state at step 6 -> the same float32 computations in this process (the same
    # kernels, thread split and summation order): bit-identical losses and state.
    got, want = np.array(resumed.history.train), np.array(full.history.train)
    assert got[:, 0].tolist() == list(range(1, 13))
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.array(resumed.history.val), np.array(full.history.val))
    assert set(resumed.state) == set(full.state)
    for name, value in full.state.items():
        np.testing.assert_array_equal(resumed.state[name], value, err_msg=name)


def test_nan_stops_the_run_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    run = loop.start_run(TINY_SPEC, TINY, tmp_path / "r")

    def poison(r):
        if r.step == 6:  # e.g. an overflow: one parameter becomes NaN after step 6's update
            r.state["final_norm"][0] = np.nan

    with pytest.raises(loop.TrainingDiverged, match=r"loss is nan .* at step 7.*ckpt-step000004"):
        loop.train(run, on_step=poison)
    store = RunCheckpoints(tmp_path / "r")
    assert store.steps() == [4]
    good = load_checkpoint(store.latest())
    assert all(np.isfinite(t).all() for t in good.tensors.values())


def test_resume_rejects_a_checkpoint_that_does_not_match_the_model(tmp_path):
    run = loop.start_run(TINY_SPEC, replace(TINY, steps=4), tmp_path / "r")
    loop.train(run)
    path = RunCheckpoints(tmp_path / "r").latest()
    ck = load_checkpoint(path)
    # Same file, but its spec now claims a wider model than the tensors it holds.
    from tilegraph.train.checkpoint import save_checkpoint

    save_checkpoint(path, ck.tensors, {**ck.meta, "spec": {**TINY_SPEC, "hidden_size": 64}, "step": 4})
    (tmp_path / "r" / "config.json").unlink()  # else the spec check against config.json refuses it first
    with pytest.raises(DataError, match="does not match the model|is float32"):
        loop.resume_run(tmp_path / "r")


def test_resume_rejects_changed_data(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("to be or not to be, that is the question. " * 20)
    loop.train(loop.start_run(TINY_SPEC, replace(TINY, steps=4, data=str(text)), tmp_path / "r"))
    text.write_text("something else entirely, " * 40)
    with pytest.raises(DataError, match="changed since checkpoint"):
        loop.resume_run(tmp_path / "r")


def test_start_refuses_a_run_directory_with_checkpoints(tmp_path):
    loop.train(loop.start_run(TINY_SPEC, replace(TINY, steps=4), tmp_path / "r"))
    with pytest.raises(DataError, match="--resume"):
        loop.start_run(TINY_SPEC, TINY, tmp_path / "r")


@pytest.fixture
def spec_file(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(TINY_SPEC))
    return p


def test_cli_bad_inputs_are_one_line_errors(tmp_path, spec_file, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    cases = [
        (["train", str(spec_file), "--data", str(tmp_path / "missing.txt")], "does not exist"),
        (["train", str(spec_file), "--data", str(empty)], "is empty"),
        (["train", str(spec_file), "--seq", "128"], "exceeds the spec's max_seq_len 64"),
        (["train", str(spec_file), "--device", "tpu"], "--device 'tpu' must be one of cpu, emu, n150"),
        (["train", "--resume", str(tmp_path / "nowhere")], "does not exist"),
        (["sample", str(tmp_path)], "holds no checkpoint"),
    ]
    for argv, message in cases:
        assert (
            cli_main(
                argv + ["--out", str(tmp_path / "o")]
                if argv[0] == "train" and "--resume" not in argv
                else argv
            )
            == 2
        )
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (argv, err)


def test_cli_ctrl_c_saves_a_checkpoint_and_exits_0(tmp_path, spec_file):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tilegraph", "train", str(spec_file), "--steps", "100000", "--batch", "2", "--seq",
           "16", "--eval-interval", "50000", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:  # progress lines arrive every 10 steps when stdout is not a terminal
            if line.startswith("step"):
                break
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert "Ctrl-C: saved" in rest and "--resume" in rest
    latest = RunCheckpoints(out).latest()
    assert latest is not None and load_checkpoint(latest).step >= 10


def test_cli_resume_refuses_changed_settings(tmp_path, spec_file, capsys):
    out = tmp_path / "run"
    assert (
        cli_main(["train", str(spec_file), "--steps", "2", "--batch", "2", "--seq", "16", "--out", str(out)])
        == 0
    )
    capsys.readouterr()
    assert cli_main(["train", "--resume", str(out), "--batch", "3"]) == 2
    assert "drop --batch" in capsys.readouterr().err
    assert cli_main(["train", "--resume", str(out)]) == 0
    assert "already finished its 2 steps" in capsys.readouterr().out


def test_sample_prints_prompt_and_continuation(tmp_path, spec_file, capsys):
    out = tmp_path / "run"
    assert cli_main(["train", str(spec_file), "--steps", "8", "--batch", "2", "--seq", "32", "--warmup", "2",
                     "--eval-interval", "4", "--out", str(out)]) == 0  # fmt: skip
    capsys.readouterr()
    assert cli_main(["sample", str(out), "--prompt", "ROMEO:", "--tokens", "40", "--seed", "3"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("ROMEO:")
    assert cli_main(["sample", str(out), "--prompt", "ROMEO:", "--tokens", "40", "--seed", "3"]) == 0
    assert capsys.readouterr().out == text  # seeded: reproducible


def test_generator_window_padding_matches_full_forward(tmp_path):
    """The sampler reads position n-1 of a right-padded window: causal attention makes that equal to the
    logits of the unpadded prefix, whatever the window length."""
    from tilegraph.graph import init_params
    from tilegraph.graph.spec import load_spec
    from tilegraph.train.sample import Generator

    spec = load_spec(TINY_SPEC)
    params = init_params(spec, 3)
    tokens = np.random.default_rng(0).integers(0, 256, 40).astype(np.int32)
    short = Generator(spec, params, context=64)
    logits_16 = short.next_logits(tokens[:11])  # window 16
    logits_64 = (
        Generator(spec, params, context=64)
        ._program(64)[1]
        .run(params, {"tokens": np.pad(tokens[:11], (0, 53))[None], "targets": np.zeros((1, 64), np.int32)})[
            "logits"
        ][0, 10]
    )
    # float32 forward passes over different padded lengths: same math, different GEMM shapes.
    np.testing.assert_allclose(logits_16, logits_64, rtol=1e-4, atol=1e-5)


def test_sample_next_respects_top_k_and_greedy():
    from tilegraph.train.sample import sample_next

    logits = np.array([0.0, 5.0, 4.0, -1.0, 3.0])
    rng = np.random.default_rng(0)
    assert sample_next(logits, 0.0, None, rng) == 1
    picks = {sample_next(logits, 5.0, 2, rng) for _ in range(200)}
    assert picks == {1, 2}


def test_a_missing_compiler_stops_the_run_before_it_starts(tmp_path, spec_file, monkeypatch, capsys):
    """The CPU kernels are built when the programs are compiled: without a compiler the command says so in one
    line, exits 2, and leaves no run directory behind."""
    from tilegraph.ops import cpu_kernels

    monkeypatch.setattr(cpu_kernels, "CXX", str(tmp_path / "no-such-g++"))
    monkeypatch.setattr(cpu_kernels, "_library", None)  # as in a fresh process
    monkeypatch.setenv("TILEGRAPH_CPU_CACHE", str(tmp_path / "cache"))
    run_dir = tmp_path / "run"
    assert cli_main(["train", str(spec_file), "--steps", "2", "--seq", "32", "--out", str(run_dir)]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if not line.startswith("note: TILEGRAPH_CPU_CACHE=")]
    assert len(errors) == 1 and "no-such-g++' was not found; install g++ or set CXX" in errors[0]
    assert not run_dir.exists()
