"""The training loop, top to bottom: data -> compiled programs -> steps -> validation -> checkpoints.

    run = start_run(spec_dict, config, run_dir)        # or resume_run(run_dir)
    summary = train(run)

Each step draws a random batch, sets the learning rate from the warmup+cosine schedule and runs the compiled
training-step Program, which updates parameters and AdamW state in place. Every `eval_interval` steps (and at
the last step) the mean loss over fixed validation windows is computed, a checkpoint is written (atomically; the
last `keep` plus the best-validation one are kept) and the loss-curve PNG is redrawn.

Ctrl-C (SIGINT), SIGTERM and SIGHUP finish the current step, save a checkpoint and return normally; a second
one aborts at once, keeping the checkpoints already on disk. So does losing the reader of the output
(`tilegraph train ... | head`): the run saves and stops instead of dying mid-step. A non-finite loss or
gradient norm stops the run with `TrainingDiverged` naming the step; nothing non-finite is ever written to a
checkpoint (and `load_checkpoint` refuses one that holds any).
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tilegraph.train.checkpoint import (
    RunCheckpoints,
    check_belongs_to_run,
    check_tensors_match,
    choose_checkpoint,
)
from tilegraph.train.config import TrainConfig
from tilegraph.train.data import VOCAB_SIZE, BatchSampler, load_text, validation_batches
from tilegraph.train.lr_schedule import learning_rate_schedule
from tilegraph.train.tokenizer import check_vocab, tokenize

from tilegraph.errors import DataError, TilegraphError
from tilegraph.files import ensure_free_space, ensure_writable_dir, write_atomic


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
    run_id: str = ""  # written into config.json and every checkpoint: a file of another run is refused
    resumed_from: Path | None = None  # the checkpoint this process started from (the last good one so far)


@dataclass
class Summary:
    run_dir: Path
    steps_done: int
    stopped_by: str | None  # why the run stopped before its last step ("Ctrl-C", "SIGTERM", ...), None if it did not
    final_train_loss: float | None
    final_val_loss: float | None
    best_val: tuple[int, float] | None
    tokens_per_second: float
    checkpoint: Path | None
    plot: Path | None
    vocab_size: int = VOCAB_SIZE
    placement: dict | None = None  # Step.impl -> [ops] of the training Program (which steps ran where)

    @property
    def stopped_early(self) -> bool:
        return self.stopped_by is not None

    def lines(self) -> list[str]:
        out = [f"run directory: {self.run_dir}"]
        out.append(
            f"steps: {self.steps_done}"
            + (f"  (stopped by {self.stopped_by}; continue with --resume)" if self.stopped_by else "")
        )
        out.append(f"uniform baseline: {uniform_loss_text(self.vocab_size)} nats/char (a model that learned nothing)")
        if self.final_train_loss is not None:
            out.append(f"final train loss: {self.final_train_loss:.4f} nats/char (mean of the last 10 steps)")
        if self.final_val_loss is not None:
            below = math.log(self.vocab_size) - self.final_val_loss
            out.append(f"final validation loss: {self.final_val_loss:.4f} nats/char ({below:.3f} below uniform)")
        if self.best_val is not None:
            out.append(f"best validation loss: {self.best_val[1]:.4f} at step {self.best_val[0]}")
        out.append(f"throughput: {self.tokens_per_second:,.0f} tokens/s (training steps only)")
        for impl, ops in (self.placement or {}).items():
            counts = {op: ops.count(op) for op in ops}
            out.append(f"ran as {impl}: " + ", ".join(f"{op} x{n}" for op, n in counts.items()))
        if self.checkpoint is not None:
            out.append(f"checkpoint: {self.checkpoint}")
        if self.plot is not None:
            out.append(f"loss curve: {self.plot}")
        out.append(f"sample: tilegraph sample {self.run_dir} --prompt 'ROMEO:'")
        return out


def uniform_loss_text(vocab_size: int) -> str:
    """The loss of predicting every token with probability 1/vocab: 'ln 256 = 5.545'."""
    return f"ln {vocab_size} = {math.log(vocab_size):.3f}"


# -- setting a run up ---------------------------------------------------------------------------------


def _model(spec_dict: dict, config: TrainConfig):
    from tilegraph.graph.spec import load_spec
    from tilegraph.train.model import TrainingPrograms, training_target

    spec = load_spec(spec_dict)
    check_vocab(spec, config.tokenizer)
    if config.seq > spec.max_seq_len:
        raise DataError(
            f"--seq {config.seq} exceeds the spec's max_seq_len {spec.max_seq_len}; use --seq <= {spec.max_seq_len}"
        )
    return spec, TrainingPrograms(spec, config.batch, config.seq, dropout_seed=config.seed,
                                  target=training_target(config.device))


def _write_config(run: Run) -> None:
    config = {"run_id": run.run_id, "spec": run.spec_dict, "config": asdict(run.config)}
    write_atomic(run.run_dir / "config.json", json.dumps(config, indent=2).encode())


def _check_room(run: Run) -> None:
    # A full disk found now, not at the first checkpoint an eval interval later: room for a step checkpoint
    # and best.safetensors being rewritten at once (each briefly exists twice while replaced).
    one = sum(a.nbytes for a in run.state.values())
    ensure_free_space(run.run_dir, 4 * one + (8 << 20), "a checkpoint (and best.safetensors) of this model")


def start_run(spec_dict: dict, config: TrainConfig, run_dir: str | Path) -> Run:
    """A fresh run: parameters initialized from `config.seed`, zeroed optimizer state."""
    from tilegraph.graph import init_params

    config.validate()
    run_dir = Path(run_dir)
    if RunCheckpoints(run_dir).steps():
        raise DataError(
            f"run directory {run_dir} already holds checkpoints; use --resume {run_dir} or another --out"
        )
    created = not run_dir.exists()
    ensure_writable_dir(run_dir, "run directory")  # read-only / a file: before compiling, not at the first save
    try:
        data = load_text(config.data, config.seq)
        # Stored absolute: --resume must find the file from any working directory.
        config.data = str(Path(data.path).resolve())
        from tilegraph.graph.spec import load_spec

        check_vocab(load_spec(spec_dict), config.tokenizer)  # before training a tokenizer the spec cannot use
        train_ids, val_ids = tokenize(data, config.tokenizer, run_dir, config.seq, new=True)
        spec, programs = _model(spec_dict, config)
        state = programs.init_state(init_params(spec, config.seed))
        sampler = BatchSampler(train_ids, config.batch, config.seq, config.seed)
        val = validation_batches(val_ids, config.batch, config.seq, config.eval_batches)
        run = Run(spec_dict, spec, config, run_dir, programs, state, sampler, val, data.sha256,
                  run_id=uuid.uuid4().hex)  # fmt: skip
        _check_room(run)
        _write_config(run)
    except BaseException:
        if created:  # a run that never started leaves no folder behind
            try:
                run_dir.rmdir()
            except OSError:
                pass
        raise
    return run


def run_identity(run_dir: Path) -> tuple[str | None, dict | None]:
    """(run id, spec) from the run's config.json; (None, None) when it is missing (runs keep working without it)."""
    path = run_dir / "config.json"
    if not path.is_file():
        return None, None
    try:
        saved = json.loads(path.read_bytes())
        return saved.get("run_id"), saved["spec"]
    except (OSError, ValueError, KeyError, AttributeError) as e:
        raise DataError(f"{path} is corrupt ({e}); it names the run's spec and id") from None


def resume_run(
    run_dir: str | Path,
    keep: int | None = None,
    checkpoint: str | Path | None = None,
    steps: int | None = None,
    data_path: str | None = None,
) -> Run:
    """Restore a run from its newest step checkpoint (or `checkpoint`); it continues exactly where it stopped.

    `steps` extends (or, if above the steps done, shortens) the run: the learning rate continues smoothly from
    its current value down to min_lr at the new last step (see `learning_rate_schedule`). `data_path` names
    the training text when it moved; its contents must be the ones the run trained on."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(f"run directory {run_dir} does not exist; pass the --out directory of an earlier run")
    store = RunCheckpoints(run_dir)
    store.remove_stale_temporaries()
    ckpt = choose_checkpoint(run_dir, checkpoint, prefer_best=False,
                             flag_hint=f"tilegraph train --resume {run_dir} --checkpoint")  # fmt: skip
    run_id, spec_dict = run_identity(run_dir)
    check_belongs_to_run(ckpt, run_id, spec_dict if spec_dict is not None else ckpt.meta["spec"], run_dir)
    meta = ckpt.meta
    try:
        config = TrainConfig(**meta["config"])
    except TypeError as e:
        raise DataError(f"checkpoint {ckpt.path} has an unknown config ({e})") from None
    if keep is not None:
        config.keep = keep
    if steps is not None and steps != config.steps:
        if steps <= ckpt.step:
            raise DataError(
                f"--steps {steps}: the run in {run_dir} has already done {ckpt.step} steps; give more to extend it"
            )
        config.extend_to(steps, ckpt.step)
    if data_path is not None:
        config.data = str(Path(data_path).resolve())
    if config.data is not None and not Path(config.data).exists():
        raise DataError(
            f"data file {config.data}, which the run in {run_dir} trained on, does not exist; restore it, "
            f"or pass its new place: tilegraph train --resume {run_dir} --data FILE"
        )
    data = load_text(config.data, config.seq)
    if data.sha256 != meta.get("data_sha256"):
        raise DataError(
            f"data file {data.path} changed since checkpoint {ckpt.path} was written (its contents differ); "
            f"restore it or start a new run"
        )
    ensure_writable_dir(run_dir, "run directory")
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
    run = Run(meta["spec"], spec, config, run_dir, programs, state, sampler, val, data.sha256, ckpt.step, history,
              run_id=meta.get("run_id") or run_id or uuid.uuid4().hex, resumed_from=ckpt.path)  # fmt: skip
    _check_room(run)
    _write_config(run)
    return run


# -- the loop --------------------------------------------------------------------------------------------


# Ctrl-C, `kill` (SIGTERM) and a closed terminal (SIGHUP) all mean "stop": save first, then exit.
STOP_SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}


class _StopRequests:
    """First stop signal: ask the loop to stop after the current step (`reason` says which). A second one:
    KeyboardInterrupt at once (the checkpoints already on disk stay)."""

    def __init__(self):
        self.reason: str | None = None
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.reason is not None

    def request(self, reason: str) -> None:
        self.reason = self.reason or reason

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.reason = STOP_SIGNALS.get(signum, f"signal {signum}")

    def __enter__(self):
        for sig in STOP_SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: signal handling stays Python's default
                break
        return self

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        return False


def evaluate(run: Run, on_batch: Callable[[int, int], None] | None = None) -> float:
    """Mean loss over the fixed validation batches; `on_batch(done, total)` after each (progress)."""
    params = run.programs.parameters(run.state)
    losses = []
    for x, y in run.val_batches:
        losses.append(run.programs.loss(params, x, y))
        if on_batch is not None:
            on_batch(len(losses), len(run.val_batches))
    return float(np.mean(losses))


def _all_finite(state: dict[str, np.ndarray]) -> bool:
    return all(np.isfinite(a).all() for a in state.values())


def save(run: Run, is_best: bool) -> Path:
    """Write the current state as a step checkpoint (never when anything is non-finite)."""
    if not _all_finite(run.state):
        raise TrainingDiverged(f"state became non-finite at step {run.step}; not writing it to a checkpoint")
    meta = {
        "step": run.step,
        "run_id": run.run_id,
        "spec": run.spec_dict,
        "config": asdict(run.config),
        "sampler": run.sampler.state(),
        "data_sha256": run.data_sha256,
        "history": asdict(run.history),
    }
    return RunCheckpoints(run.run_dir, run.config.keep).save(run.step, run.state, meta, is_best)


def plot_losses(history: History, path: Path, title: str, vocab_size: int = VOCAB_SIZE) -> Path:
    """Train (raw and smoothed) and validation loss against step, with the uniform baseline ln(vocab), written
    atomically as a PNG."""
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
    ax.axhline(math.log(vocab_size), color="gray", linestyle="--", linewidth=1,
               label=f"uniform over {vocab_size} tokens ({uniform_loss_text(vocab_size)})")  # fmt: skip
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/char)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    try:
        write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=100))
    finally:
        plt.close(fig)
    return path


def plot_title(spec_name: str, cfg: TrainConfig) -> str:
    """What the run really did: the peak lr only when warmup ends within the run."""
    if cfg.warmup <= cfg.steps:
        lr = f"peak lr {cfg.lr:g}"
    else:
        lr = f"lr only up to {cfg.lr * cfg.steps / cfg.warmup:.3g} (warmup {cfg.warmup} > {cfg.steps} steps)"
    return f"{spec_name}: batch {cfg.batch} x seq {cfg.seq}, {lr}"


def warmup_warning(cfg: TrainConfig) -> str | None:
    if cfg.warmup > cfg.steps:
        top = cfg.lr * cfg.steps / cfg.warmup
        return (f"warning: --warmup {cfg.warmup} is longer than the run ({cfg.steps} steps): the learning rate only "
                f"reaches {top:.3g}, not the peak --lr {cfg.lr:g}; use --warmup <= {cfg.steps}")  # fmt: skip
    return None


class _Progress:
    """tqdm bar on a terminal; plain log lines every `every` steps otherwise (nohup logs stay readable).

    The output may go away (`| head` exits, the terminal closes): then writing stops, `lost` is set, and the
    loop saves and stops rather than dying mid-step."""

    def __init__(self, start: int, total: int, every: int = 10):
        from tqdm import tqdm

        self.tty = sys.stderr.isatty()
        self.every = every
        self.lost = False
        self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, disable=not self.tty)

    def _guard(self, show: Callable[[], None]) -> None:
        if self.lost:
            return
        try:
            show()
        except (BrokenPipeError, OSError):  # EPIPE, or EIO from a hung-up terminal
            self.lost = True
            self.bar.disable = True
            try:
                fd = os.open(os.devnull, os.O_WRONLY)
                os.dup2(fd, sys.stdout.fileno())
                os.dup2(fd, sys.stderr.fileno())
            except (OSError, ValueError):
                pass

    def update(self, step: int, total: int, loss: float, lr: float, tok_s: float) -> None:
        if self.tty:
            def show():
                self.bar.update(1)
                self.bar.set_postfix_str(f"loss {loss:.4f}  lr {lr:.2e}  {tok_s:,.0f} tok/s", refresh=False)
        elif step % self.every == 0 or step == total:
            def show():
                print(f"step {step:5d}/{total}  loss {loss:.4f}  lr {lr:.2e}  {tok_s:,.0f} tok/s", flush=True)
        else:
            return
        self._guard(show)

    def validating(self, done: int, total: int) -> None:
        """A long validation (many --eval-batches) shows its progress instead of looking stuck."""
        if total < 50 or (done % max(1, total // 10) and done != total):
            return
        if self.tty:
            self._guard(lambda: self.bar.set_postfix_str(f"validating {done}/{total} batches", refresh=True))
        else:
            self._guard(lambda: print(f"validating: {done}/{total} batches", flush=True))

    def write(self, line: str) -> None:
        self._guard(lambda: self.bar.write(line) if self.tty else print(line, flush=True))

    def close(self) -> None:
        self._guard(self.bar.close)


def train(run: Run, on_step: Callable[[Run], None] | None = None) -> Summary:
    """Run the remaining steps of `run`. `on_step(run)` is called after every completed step (tests use it
    to inject faults or a Ctrl-C)."""
    cfg = run.config
    schedule = learning_rate_schedule(cfg)
    tokens_per_step = cfg.batch * cfg.seq
    store = RunCheckpoints(run.run_dir, cfg.keep)
    plot_path = run.run_dir / "loss.png"
    title = plot_title(run.spec.name, cfg)
    vocab = run.spec.vocab_size
    last_ckpt: Path | None = run.resumed_from  # every checkpoint this loop writes was checked finite first
    recent: list[float] = []  # step times of the last few steps, for the bar's tokens/s
    progress = _Progress(run.step, cfg.steps)
    stopped_by = None
    first_step = True
    try:
        with _StopRequests() as stop:
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
                    # --resume would replay the same batches into the same divergence: only a new run helps.
                    raise TrainingDiverged(
                        f"loss is {result.loss} (gradient norm {result.grad_norm}) at step {step}; stopped. "
                        f"{where}. Start a new run with a lower --lr (e.g. --lr {cfg.lr / 3:.2g}) or a longer "
                        f"--warmup (e.g. --warmup {max(2 * cfg.warmup, 10)})"
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
                    val = evaluate(run, progress.validating)
                    best = run.history.best_val
                    run.history.val.append((step, val))
                    last_ckpt = save(run, is_best=best is None or val < best[1])
                    plot_losses(run.history, plot_path, title, vocab)
                    progress.write(
                        f"step {step}: validation loss {val:.4f} (train {result.loss:.4f}, lr {lr:.2e})"
                    )
                if progress.lost:
                    stop.request("the output closing (e.g. `| head`)")
                if stop.requested and run.step < cfg.steps:
                    stopped_by = stop.reason
                    if last_ckpt != store.step_path(run.step):
                        last_ckpt = save(run, is_best=False)
                    plot_losses(run.history, plot_path, title, vocab)
                    progress.write(
                        f"{stopped_by}: saved {last_ckpt}; continue with: tilegraph train --resume {run.run_dir}"
                    )
                    break
    finally:
        progress.close()

    h = run.history
    last = [loss for _, loss in h.train[-10:]]
    return Summary(
        run.run_dir,
        run.step,
        stopped_by,
        float(np.mean(last)) if last else None,
        h.val[-1][1] if h.val and h.val[-1][0] == run.step else None,
        h.best_val,
        tokens_per_step * h.timed_steps / h.train_seconds if h.train_seconds > 0 else 0.0,
        last_ckpt,
        plot_path if plot_path.exists() else None,
        vocab,
        placement(run.programs.train_program),
    )


def placement(program) -> dict[str, list[str]]:
    """Step.impl -> the ops of the steps placed there, in program order (kernel steps first)."""
    where: dict[str, list[str]] = {}
    for step in program.steps:
        where.setdefault(step.impl, []).append(step.op)
    return dict(sorted(where.items(), key=lambda kv: (not kv[0].startswith("kernel:"), kv[0])))
