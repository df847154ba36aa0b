"""No lost work and no surprises in `tilegraph train` / `sample` (issue 10): which checkpoint is used and what
happens when it is damaged, foreign or non-finite; best.safetensors as its own file; extending a run; SIGTERM,
SIGHUP and a closed output pipe; run directories that cannot be written; relative --data; spec names; the
warmup warning and the uniform baseline. Tiny model, a few steps each."""

import json
import math
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml
from tilegraph.train import loop
from tilegraph.train.checkpoint import RunCheckpoints, load_checkpoint, save_checkpoint
from tilegraph.train.config import TrainConfig
from tilegraph.train.lr_schedule import WarmupCosine, learning_rate_schedule

from tilegraph.cli import main
from tilegraph.errors import DataError, FileError
from tilegraph.files import ensure_free_space, ensure_writable_dir

TINY_SPEC = {
    "name": "tiny-rel", "vocab_size": 256, "hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 2,
    "mlp_hidden": 48, "norm_eps": 1.0e-5, "rope_base": 10000, "max_seq_len": 64, "tie_embeddings": True,
}  # fmt: skip
TINY = TrainConfig(steps=6, batch=2, seq=16, warmup=2, eval_interval=2, eval_batches=1, seed=3, keep=3)
SMALL = ["--batch", "2", "--seq", "16", "--warmup", "2", "--eval-batches", "1"]


@pytest.fixture
def spec_file(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(TINY_SPEC))
    return p


def _one_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("note: TILEGRAPH_")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _trained(tmp_path, name="r", **changes) -> Path:
    run = loop.start_run(TINY_SPEC, replace(TINY, **changes), tmp_path / name)
    loop.train(run)
    return tmp_path / name


def _damage(path: Path) -> None:
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data[: len(data) // 2]))


# -- checkpoints ----------------------------------------------------------------------------------------------


def test_a_damaged_newest_checkpoint_stops_and_names_the_newest_good_one(tmp_path, capsys):
    run_dir = _trained(tmp_path)
    _damage(run_dir / "ckpt-step000006.safetensors")
    assert main(["train", "--resume", str(run_dir), "--steps", "8"]) == 2
    err = _one_error(capsys)
    good = run_dir / "ckpt-step000004.safetensors"
    assert "ckpt-step000006.safetensors is corrupt" in err
    assert f"tilegraph train --resume {run_dir} --checkpoint {good}" in err
    # The command it names works, and continues from step 4.
    assert main(["train", "--resume", str(run_dir), "--steps", "8", "--checkpoint", str(good)]) == 0
    assert f"resuming {run_dir} at step 4/8" in capsys.readouterr().out
    assert load_checkpoint(run_dir / "ckpt-step000008.safetensors").step == 8


def test_sample_with_a_damaged_best_names_the_fallback_and_takes_checkpoint(tmp_path, capsys):
    run_dir = _trained(tmp_path)
    _damage(run_dir / "best.safetensors")
    assert main(["sample", str(run_dir), "--tokens", "5"]) == 2
    newest = run_dir / "ckpt-step000006.safetensors"
    assert f"the newest checkpoint that loads is {newest}: tilegraph sample {run_dir} --checkpoint {newest}" in (
        _one_error(capsys)
    )
    assert main(["sample", str(run_dir), "--tokens", "5", "--checkpoint", str(newest), "--prompt", "AB"]) == 0
    assert capsys.readouterr().out.startswith("AB")


def test_best_is_a_separate_file_not_a_link(tmp_path):
    run_dir = _trained(tmp_path)
    best = run_dir / "best.safetensors"
    step = run_dir / f"ckpt-step{load_checkpoint(best).step:06d}.safetensors"
    assert best.stat().st_nlink == 1 and not os.path.samefile(best, step)
    assert best.read_bytes() == step.read_bytes()
    _damage(step)  # damage to one does not reach the other
    assert load_checkpoint(best).step == int(step.name[9:15])


def test_a_checkpoint_of_another_run_is_refused(tmp_path, capsys):
    mine = _trained(tmp_path, "mine")
    other = _trained(tmp_path, "other", seed=4)  # same spec, another run
    (other / "ckpt-step000006.safetensors").rename(mine / "ckpt-step000010.safetensors")
    assert main(["train", "--resume", str(mine), "--steps", "12"]) == 2
    err = _one_error(capsys)
    assert "ckpt-step000010.safetensors was written by another run" in err and "move it out of" in err


def test_sample_refuses_a_best_of_another_run(tmp_path, capsys):
    mine = _trained(tmp_path, "mine")
    other = _trained(tmp_path, "other", seed=4)
    (other / "best.safetensors").replace(mine / "best.safetensors")
    assert main(["sample", str(mine), "--tokens", "2"]) == 2
    assert "best.safetensors was written by another run" in _one_error(capsys)


def test_a_checkpoint_of_another_spec_is_refused(tmp_path):
    run_dir = _trained(tmp_path)
    path = run_dir / "ckpt-step000006.safetensors"
    ck = load_checkpoint(path)
    meta = {**ck.meta, "run_id": None, "spec": {**TINY_SPEC, "name": "other"}}  # a file of a run before run ids
    save_checkpoint(path, ck.tensors, meta)
    with pytest.raises(DataError, match="holds a model spec that differs from the run's"):
        loop.resume_run(run_dir)


def test_non_finite_weights_are_refused_at_load(tmp_path):
    run_dir = _trained(tmp_path)
    path = run_dir / "ckpt-step000006.safetensors"
    ck = load_checkpoint(path)
    name = min(ck.tensors)
    ck.tensors[name].flat[3] = np.nan
    save_checkpoint(path, ck.tensors, ck.meta)
    with pytest.raises(DataError, match=f"tensor {name!r} holds 1 non-finite values"):
        load_checkpoint(path)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the inf we inject
def test_divergence_names_the_checkpoint_it_resumed_from_and_only_working_options(tmp_path):
    run_dir = _trained(tmp_path, steps=4)
    run = loop.resume_run(run_dir, steps=8)
    # A newer file that is not part of this process's run must not be called "last good".
    (run_dir / "ckpt-step000007.safetensors").write_bytes(b"junk")

    def blow_up(r):
        r.state[min(r.state)][...] = np.inf

    with pytest.raises(loop.TrainingDiverged) as e:
        loop.train(run, on_step=blow_up)
    message = str(e.value)
    assert f"last good checkpoint: {run_dir / 'ckpt-step000004.safetensors'}" in message
    assert "Start a new run with a lower --lr" in message and "--resume" not in message


def test_resume_with_steps_extends_the_run_with_a_continuous_learning_rate(tmp_path, capsys):
    run_dir = _trained(tmp_path, steps=6, warmup=2)
    ends_at = WarmupCosine(TINY.lr, TINY.min_lr, 2, 6)(6)
    assert main(["train", "--resume", str(run_dir), "--steps", "10"]) == 0
    assert "resuming" in capsys.readouterr().out
    ck = load_checkpoint(run_dir / "ckpt-step000010.safetensors")
    assert ck.step == 10 and [s for s, _ in ck.meta["history"]["train"]] == list(range(1, 11))
    config = TrainConfig(**ck.meta["config"])
    assert config.steps == 10 and config.decay_from == [6, ends_at]
    schedule = learning_rate_schedule(config)
    # The run had reached min_lr at its old last step: the extension continues from there, no jump back up.
    assert [schedule(s) for s in (7, 10)] == [pytest.approx(TINY.min_lr)] * 2
    assert json.loads((run_dir / "config.json").read_text())["config"]["steps"] == 10
    assert main(["train", "--resume", str(run_dir), "--steps", "5"]) == 2
    assert "has already done 10 steps" in _one_error(capsys)


def test_extending_mid_decay_continues_from_the_current_rate():
    config = TrainConfig(steps=100, warmup=10, lr=1e-3, min_lr=1e-4)
    before = learning_rate_schedule(config)(50)
    config.extend_to(200, 50)
    after = learning_rate_schedule(config)
    assert after(51) == pytest.approx(before, rel=1e-3) and after(200) == pytest.approx(1e-4)
    assert all(after(s) >= after(s + 1) for s in range(51, 200))


# -- signals and pipes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_save_like_ctrl_c(tmp_path, spec_file, sig):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tilegraph", "train", str(spec_file), "--steps", "100000", *SMALL,
           "--eval-interval", "50000", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("step"):
                break
        proc.send_signal(sig)
        rest = proc.communicate(timeout=120)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    name = signal.Signals(sig).name
    assert f"{name}: saved" in rest and f"stopped by {name}" in rest
    latest = RunCheckpoints(out).latest()
    assert latest is not None and load_checkpoint(latest).step >= 10


def test_train_into_a_closed_pipe_saves_and_exits_quietly(tmp_path, spec_file):
    out = tmp_path / "run"
    cmd = (f"{sys.executable} -m tilegraph train {spec_file} --steps 100000 {' '.join(SMALL)} --eval-interval 50000 "
           f"--out {out} | head -n 3")  # fmt: skip
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "Error" not in proc.stderr, proc.stderr
    latest = RunCheckpoints(out).latest()
    assert latest is not None and 10 <= load_checkpoint(latest).step < 100000


# -- files -----------------------------------------------------------------------------------------------------


def _unwritable_dir(tmp_path) -> Path:
    """An existing folder this process cannot create files in (root ignores permission bits; sysfs refuses it)."""
    if os.geteuid() == 0:
        return Path("/sys/kernel")
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    return d


def test_an_unwritable_run_directory_is_found_before_training(tmp_path, spec_file, capsys):
    target = _unwritable_dir(tmp_path)
    assert main(["train", str(spec_file), "--steps", "2", *SMALL, "--out", str(target)]) == 2
    err = _one_error(capsys)
    assert f"run directory: {target} is not writable" in err
    assert "training tiny-rel" not in capsys.readouterr().out  # stopped before the first step


def test_out_naming_a_file_is_one_line(tmp_path, spec_file, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    assert main(["train", str(spec_file), "--steps", "2", *SMALL, "--out", str(f)]) == 2
    assert f"run directory {f} is a file, not a folder" in _one_error(capsys)


def test_a_full_disk_is_found_before_training(tmp_path):
    with pytest.raises(FileError, match="MiB free; a checkpoint needs about"):
        ensure_free_space(tmp_path, 1 << 60, "a checkpoint")
    ensure_free_space(tmp_path, 1, "a checkpoint")  # and room is not refused


def test_a_small_file_system_is_refused_by_start_run(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True, check=False).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root and mount permission)")
    try:
        with pytest.raises(FileError, match="needs about"):
            loop.start_run(TINY_SPEC, TINY, mnt / "run")
        assert not (mnt / "run").exists()
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_ensure_writable_dir_leaves_nothing_behind(tmp_path):
    ensure_writable_dir(tmp_path / "new", "run directory")
    assert list((tmp_path / "new").iterdir()) == []


def test_relative_data_is_stored_absolute_and_resume_works_from_elsewhere(tmp_path, spec_file, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    (work / "t.txt").write_text("to be or not to be, that is the question. " * 20)
    monkeypatch.chdir(work)
    assert main(["train", str(spec_file), "--steps", "2", *SMALL, "--data", "t.txt", "--out", "run"]) == 0
    saved = json.loads((work / "run" / "config.json").read_text())["config"]["data"]
    assert saved == str(work / "t.txt")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--resume", "work/run", "--steps", "4"]) == 0
    # Moved data: the message names the option that works, and the option works.
    (work / "t.txt").rename(tmp_path / "moved.txt")
    capsys.readouterr()
    assert main(["train", "--resume", "work/run", "--steps", "6"]) == 2
    assert "tilegraph train --resume work/run --data FILE" in _one_error(capsys)
    assert main(["train", "--resume", "work/run", "--steps", "6", "--data", "moved.txt"]) == 0


def test_a_spec_name_cannot_escape_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    p = tmp_path / "esc.yaml"
    p.write_text(yaml.safe_dump({**TINY_SPEC, "name": "../escape"}))
    assert main(["train", str(p), "--steps", "2", *SMALL]) == 2
    assert "name '../escape' cannot name a run folder" in _one_error(capsys)
    assert not (tmp_path / "escape").exists() and not list(tmp_path.parent.glob("escape-*"))


def test_stale_temporaries_are_removed_by_resume_and_sample(tmp_path, capsys):
    run_dir = _trained(tmp_path)
    for name in (".ckpt-step000008.safetensors.abc123.tmp", ".best.safetensors.x.tmp"):
        (run_dir / name).write_bytes(b"half a checkpoint")
    assert main(["sample", str(run_dir), "--tokens", "2"]) == 0
    assert not list(run_dir.glob(".*.tmp"))
    (run_dir / ".loss.png.y.tmp").write_bytes(b"half")
    loop.resume_run(run_dir)
    assert not list(run_dir.glob(".*.tmp"))


# -- misleading or silent --------------------------------------------------------------------------------------


def test_steps_below_warmup_warns_and_the_title_says_what_happened(tmp_path, spec_file, capsys):
    assert main(["train", str(spec_file), "--steps", "3", "--batch", "2", "--seq", "16", "--warmup", "10",
                 "--out", str(tmp_path / "r")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "warning: --warmup 10 is longer than the run (3 steps): the learning rate only reaches 0.0003" in out
    title = loop.plot_title("m", replace(TINY, steps=3, warmup=10))
    assert "peak lr" not in title and "lr only up to 0.0003 (warmup 10 > 3 steps)" in title
    assert "peak lr 0.001" in loop.plot_title("m", TINY)


def test_summary_and_plot_show_the_uniform_baseline(tmp_path):
    run = loop.start_run(TINY_SPEC, TINY, tmp_path / "r")
    summary = loop.train(run)
    lines = "\n".join(summary.lines())
    assert f"uniform baseline: ln 256 = {math.log(256):.3f} nats/char" in lines and "5.545" in lines
    below = math.log(256) - summary.final_val_loss
    assert f"({below:.3f} below uniform)" in lines


def test_plot_has_the_uniform_line(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seen = {}
    real_close = plt.close

    def keep(fig):  # look at the finished figure before it is closed
        ax = fig.axes[0]
        seen["lines"] = {line.get_label(): line.get_ydata() for line in ax.get_lines()}
        real_close(fig)

    monkeypatch.setattr(plt, "close", keep)
    loop.plot_losses(loop.History(train=[(1, 5.0), (2, 4.0)], val=[(2, 4.2)]), tmp_path / "p.png", "t", 256)
    (label,) = [k for k in seen["lines"] if k.startswith("uniform")]
    assert label == "uniform over 256 tokens (ln 256 = 5.545)"
    assert np.allclose(seen["lines"][label], math.log(256))


def test_a_huge_eval_batches_is_bounded(tmp_path, spec_file, capsys):
    assert main(["train", str(spec_file), "--steps", "2", "--batch", "16", "--seq", "16", "--eval-batches",
                 "100000", "--out", str(tmp_path / "r")]) == 2  # fmt: skip
    err = _one_error(capsys)
    assert "--eval-batches 100000: the validation text holds only" in err and "use at most that many" in err


def test_a_long_validation_shows_progress(tmp_path, capsys):
    run = loop.start_run(TINY_SPEC, replace(TINY, steps=2, eval_interval=2, eval_batches=60), tmp_path / "r")
    loop.train(run)
    out = capsys.readouterr().out
    assert "validating: 6/60 batches" in out and "validating: 60/60 batches" in out
