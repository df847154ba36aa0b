"""The training loop, top to bottom: data -> compiled programs -> steps -> validation -> checkpoints.

    run = start_run(spec_dict, config, run_dir)        # or resume_run(run_dir)
    summary = train(run)

Each step draws a random batch, sets the learning rate from the warmup+cosine schedule and runs the compiled
training-step Program, which updates parameters and AdamW state in place. Every `eval_interval` steps (and at
the last step) the mean loss over fixed validation windows is computed, a checkpoint is written (atomically; the
last `keep` plus the best-validation one are kept) and the loss-curve PNG is redrawn.

Ctrl-C (SIGINT) finishes the current step, saves a checkpoint and returns normally; a second Ctrl-C aborts at
once, keeping the checkpoints already on disk. A non-finite loss or gradient norm stops the run with
`TrainingDiverged` naming the step; nothing non-finite is ever written to a checkpoint.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tilegraph.train.checkpoint import RunCheckpoints, check_tensors_match, load_checkpoint, write_atomic
from tilegraph.train.config import TrainConfig
from tilegraph.train.data import BatchSampler, load_text, validation_batches
from tilegraph.train.tokenizer import check_vocab, tokenize
from tilegraph.train.schedule import WarmupCosine

from tilegraph.errors import DataError, TilegraphError


class TrainingDiverged(TilegraphError):
    """The loss or gradient norm became NaN/inf; the run stopped and kept its last good checkpoint."""


@dataclass
class History:
    """Losses so far: stored in every checkpoint so a resumed run draws the whole curve."""

    train: list[tuple[int, float]] = field(default_factory=list)  # (step, training loss)
    val: list[tuple[int, float]] = field(default_factory=list)  # (step, validation loss)
    train_seconds: float = 0.0  # time spent inside training steps (for tokens/s)
    timed_steps: int = 0

    @property
    def best_val(self) -> tuple[int, float] | None:
        return min(self.val, key=lambda sv: sv[1]) if self.val else None


@dataclass
class Run:
    """Everything a training loop needs, either fresh or restored from a checkpoint."""

    spec_dict: dict
    spec: object  # tilegraph.graph.spec.ModelSpec
    config: TrainConfig
    run_dir: Path
    programs: object  # tilegraph.train.model.TrainingPrograms
    state: dict[str, np.ndarray]
    sampler: BatchSampler
    val_batches: list
    data_sha256: str
    step: int = 0  # steps completed
    history: History = field(default_factory=History)


@dataclass
class Summary:
    run_dir: Path
    steps_done: int
    stopped_early: bool  # Ctrl-C
    final_train_loss: float | None
    final_val_loss: float | None
    best_val: tuple[int, float] | None
    tokens_per_second: float
    checkpoint: Path | None
    plot: Path | None

    def lines(self) -> list[str]:
        out = [f"run directory: {self.run_dir}"]
        out.append(
            f"steps: {self.steps_done}"
            + ("  (stopped by Ctrl-C; resume with --resume)" if self.stopped_early else "")
        )
        if self.final_train_loss is not None:
            out.append(f"final train loss: {self.final_train_loss:.4f} nats/char (mean of the last 10 steps)")
        if self.final_val_loss is not None:
            out.append(f"final validation loss: {self.final_val_loss:.4f} nats/char")
        if self.best_val is not None:
            out.append(f"best validation loss: {self.best_val[1]:.4f} at step {self.best_val[0]}")
        out.append(f"throughput: {self.tokens_per_second:,.0f} tokens/s (training steps only)")
        if self.checkpoint is not None:
            out.append(f"checkpoint: {self.checkpoint}")
        if self.plot is not None:
            out.append(f"loss curve: {self.plot}")
        out.append(f"sample: tilegraph sample {self.run_dir} --prompt 'ROMEO:'")
        return out


# -- setting a run up ---------------------------------------------------------------------------------


def _model(spec_dict: dict, config: TrainConfig):
    from tilegraph.graph.spec import load_spec
    from tilegraph.train.model import TrainingPrograms

    spec = load_spec(spec_dict)
    check_vocab(spec, config.tokenizer)
    if config.seq > spec.max_seq_len:
        raise DataError(
            f"--seq {config.seq} exceeds the spec's max_seq_len {spec.max_seq_len}; use --seq <= {spec.max_seq_len}"
        )
    return spec, TrainingPrograms(spec, config.batch, config.seq, dropout_seed=config.seed)


def start_run(spec_dict: dict, config: TrainConfig, run_dir: str | Path) -> Run:
    """A fresh run: parameters initialized from `config.seed`, zeroed optimizer state."""
    from tilegraph.graph import init_params

    config.validate()
    run_dir = Path(run_dir)
    if RunCheckpoints(run_dir).steps():
        raise DataError(
            f"run directory {run_dir} already holds checkpoints; use --resume {run_dir} or another --out"
        )
    data = load_text(config.data, config.seq)
    from tilegraph.graph.spec import load_spec

    check_vocab(load_spec(spec_dict), config.tokenizer)  # before training a tokenizer for a spec that cannot use it
    train_ids, val_ids = tokenize(data, config.tokenizer, run_dir, config.seq, new=True)
    spec, programs = _model(spec_dict, config)
    state = programs.init_state(init_params(spec, config.seed))
    sampler = BatchSampler(train_ids, config.batch, config.seq, config.seed)
    val = validation_batches(val_ids, config.batch, config.seq, config.eval_batches)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(
        run_dir / "config.json", json.dumps({"spec": spec_dict, "config": asdict(config)}, indent=2).encode()
    )
    return Run(spec_dict, spec, config, run_dir, programs, state, sampler, val, data.sha256)


def resume_run(run_dir: str | Path, keep: int | None = None) -> Run:
    """Restore a run from the latest step checkpoint of `run_dir`; it continues exactly where it stopped."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"run directory {run_dir} does not exist; pass the --out directory of an earlier run")
    store = RunCheckpoints(run_dir)
    latest = store.latest()
    if latest is None:
        raise DataError(
            f"run directory {run_dir} holds no checkpoint (ckpt-step*.safetensors) to resume from"
        )
    ckpt = load_checkpoint(latest)
    meta = ckpt.meta
    try:
        config = TrainConfig(**meta["config"])
    except TypeError as e:
        raise DataError(f"checkpoint {latest} has an unknown config ({e})") from None
    if keep is not None:
        config.keep = keep
    data = load_text(config.data, config.seq)
    if data.sha256 != meta.get("data_sha256"):
        raise DataError(
            f"data file {data.path} changed since checkpoint {latest} was written; restore it or start a new run"
        )
    train_ids, val_ids = tokenize(data, config.tokenizer, run_dir, config.seq, new=False)
    spec, programs = _model(meta["spec"], config)
    from tilegraph.graph import init_params

    state = programs.init_state(init_params(spec, config.seed))  # allocates the buffers; overwritten below
    check_tensors_match(ckpt, programs.state_signature(state))
    for name, array in ckpt.tensors.items():
        state[name][...] = array
    sampler = BatchSampler(train_ids, config.batch, config.seq, config.seed)
    sampler.set_state(meta["sampler"])
    val = validation_batches(val_ids, config.batch, config.seq, config.eval_batches)
    h = meta.get("history", {})
    history = History(
        [tuple(x) for x in h.get("train", [])],
        [tuple(x) for x in h.get("val", [])],
        float(h.get("train_seconds", 0.0)),
        int(h.get("timed_steps", 0)),
    )
    store.remove_stale_temporaries()
    return Run(
        meta["spec"], spec, config, run_dir, programs, state, sampler, val, data.sha256, ckpt.step, history
    )


# -- the loop --------------------------------------------------------------------------------------------


class _CtrlC:
    """First SIGINT: ask the loop to stop after the current step. Second SIGINT: KeyboardInterrupt at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        except ValueError:  # not the main thread: Ctrl-C handling stays Python's default
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def evaluate(run: Run) -> float:
    """Mean loss over the fixed validation batches."""
    params = {v: run.state[v] for v in run.state if ":" not in v}  # parameters only, not m:/v: state
    return float(np.mean([run.programs.loss(params, x, y) for x, y in run.val_batches]))


def _all_finite(state: dict[str, np.ndarray]) -> bool:
    return all(np.isfinite(a).all() for a in state.values())


def save(run: Run, is_best: bool) -> Path:
    """Write the current state as a step checkpoint (never when anything is non-finite)."""
    if not _all_finite(run.state):
        raise TrainingDiverged(f"state became non-finite at step {run.step}; not writing it to a checkpoint")
    meta = {
        "step": run.step,
        "spec": run.spec_dict,
        "config": asdict(run.config),
        "sampler": run.sampler.state(),
        "data_sha256": run.data_sha256,
        "history": asdict(run.history),
    }
    return RunCheckpoints(run.run_dir, run.config.keep).save(run.step, run.state, meta, is_best)


def plot_losses(history: History, path: Path, title: str) -> Path:
    """Train (raw and smoothed) and validation loss against step, written atomically as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    if history.train:
        steps, losses = np.array(history.train, dtype=np.float64).T
        ax.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.8)
        window = min(20, len(losses))
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        start = (window - 1) // 2  # centered: a trailing mean would lag the raw curve by window/2 steps
        ax.plot(
            steps[start : start + len(smooth)],
            smooth,
            color="tab:blue",
            label=f"train (mean of {window} steps)",
        )
    if history.val:
        vs, vl = np.array(history.val, dtype=np.float64).T
        ax.plot(vs, vl, "o-", color="tab:orange", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/char)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)
    return path


class _Progress:
    """tqdm bar on a terminal; plain log lines every `every` steps otherwise (nohup logs stay readable)."""

    def __init__(self, start: int, total: int, every: int = 10):
        from tqdm import tqdm

        self.tty = sys.stderr.isatty()
        self.every = every
        self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, disable=not self.tty)

    def update(self, step: int, total: int, loss: float, lr: float, tok_s: float) -> None:
        if self.tty:
            self.bar.update(1)
            self.bar.set_postfix_str(f"loss {loss:.4f}  lr {lr:.2e}  {tok_s:,.0f} tok/s", refresh=False)
        elif step % self.every == 0 or step == total:
            print(f"step {step:5d}/{total}  loss {loss:.4f}  lr {lr:.2e}  {tok_s:,.0f} tok/s", flush=True)

    def write(self, line: str) -> None:
        if self.tty:
            self.bar.write(line)
        else:
            print(line, flush=True)

    def close(self) -> None:
        self.bar.close()


def train(run: Run, on_step: Callable[[Run], None] | None = None) -> Summary:
    """Run the remaining steps of `run`. `on_step(run)` is called after every completed step (tests use it
    to inject faults or a Ctrl-C)."""
    cfg = run.config
    schedule = WarmupCosine(cfg.lr, cfg.min_lr, cfg.warmup, cfg.steps)
    tokens_per_step = cfg.batch * cfg.seq
    store = RunCheckpoints(run.run_dir, cfg.keep)
    plot_path = run.run_dir / "loss.png"
    title = f"{run.spec.name}: batch {cfg.batch} x seq {cfg.seq}, peak lr {cfg.lr:g}"
    last_ckpt: Path | None = store.latest()
    recent: list[float] = []  # step times of the last few steps, for the bar's tokens/s
    progress = _Progress(run.step, cfg.steps)
    stopped_early = False
    first_step = True
    try:
        with _CtrlC() as ctrl_c:
            while run.step < cfg.steps:
                step = run.step + 1
                tokens, targets = run.sampler.next_batch()
                lr = schedule(step)
                t0 = time.perf_counter()
                result = run.programs.train_step(run.state, tokens, targets, lr, step)
                dt = time.perf_counter() - t0
                if not (math.isfinite(result.loss) and math.isfinite(result.grad_norm)):
                    where = (
                        f"last good checkpoint: {last_ckpt}" if last_ckpt else "no checkpoint was written yet"
                    )
                    raise TrainingDiverged(
                        f"loss is {result.loss} (gradient norm {result.grad_norm}) at step {step}; stopped. "
                        f"{where}. Lower --lr or raise --warmup"
                    )
                run.step = step
                run.history.train.append((step, result.loss))
                if not first_step:  # the first step of a process includes one-time buffer set-up
                    run.history.train_seconds += dt
                    run.history.timed_steps += 1
                first_step = False
                recent = (recent + [dt])[-10:]
                progress.update(step, cfg.steps, result.loss, lr, tokens_per_step * len(recent) / sum(recent))
                if on_step is not None:
                    on_step(run)

                if step % cfg.eval_interval == 0 or step == cfg.steps:
                    val = evaluate(run)
                    best = run.history.best_val
                    run.history.val.append((step, val))
                    last_ckpt = save(run, is_best=best is None or val < best[1])
                    plot_losses(run.history, plot_path, title)
                    progress.write(
                        f"step {step}: validation loss {val:.4f} (train {result.loss:.4f}, lr {lr:.2e})"
                    )
                if ctrl_c.requested and run.step < cfg.steps:
                    stopped_early = True
                    if store.latest() != store.step_path(run.step):
                        last_ckpt = save(run, is_best=False)
                    plot_losses(run.history, plot_path, title)
                    progress.write(
                        f"Ctrl-C: saved {last_ckpt}; continue with: tilegraph train --resume {run.run_dir}"
                    )
                    break
    finally:
        progress.close()

    h = run.history
    last = [loss for _, loss in h.train[-10:]]
    return Summary(
        run.run_dir,
        run.step,
        stopped_early,
        float(np.mean(last)) if last else None,
        h.val[-1][1] if h.val and h.val[-1][0] == run.step else None,
        h.best_val,
        tokens_per_step * h.timed_steps / h.train_seconds if h.train_seconds > 0 else 0.0,
        last_ckpt,
        plot_path if plot_path.exists() else None,
    )
