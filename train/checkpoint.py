"""Checkpoints: one safetensors file holding parameters, optimizer state and JSON metadata.

The metadata (model spec, step, data-sampler state, run config, losses so far) is stored as JSON under the
safetensors metadata key "tilegraph". Files are written with `tilegraph.files.write_atomic`, so a crash or kill
during a save leaves either the old file or the new one, never half of one. `RunCheckpoints` keeps the last K
step checkpoints of a run directory plus a separate copy of the one with the best validation loss
(best.safetensors: its own bytes, so damage to one file never reaches the other).

Loading checks everything a resumed run relies on: the format, the metadata, that every tensor is finite, and
(`check_belongs_to_run`) that the file was written by this run. Which file is used: `choose_checkpoint`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tilegraph.errors import DataError
from tilegraph.files import remove_stale_temporaries, write_atomic

FORMAT = "tilegraph-checkpoint-1"
META_KEY = "tilegraph"
BEST_NAME = "best.safetensors"
_STEP_FILE = re.compile(r"^ckpt-step(\d+)\.safetensors$")


@dataclass
class Checkpoint:
    tensors: dict[str, np.ndarray]  # parameters and optimizer state, by their graph names
    meta: dict  # JSON-serializable: spec, step, sampler state, config, history...
    path: Path

    @property
    def step(self) -> int:
        return int(self.meta["step"])


def checkpoint_bytes(tensors: dict[str, np.ndarray], meta: dict) -> bytes:
    """The safetensors file holding tensors + metadata."""
    from safetensors.numpy import save

    meta_json = json.dumps({"format": FORMAT, **meta})
    contiguous = {name: np.ascontiguousarray(a) for name, a in tensors.items()}
    return save(contiguous, metadata={META_KEY: meta_json})


def save_checkpoint(path: str | Path, tensors: dict[str, np.ndarray], meta: dict) -> Path:
    """Atomically write tensors + metadata to `path` (a .safetensors file)."""
    return write_atomic(path, checkpoint_bytes(tensors, meta))


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read a checkpoint; a missing, truncated or foreign file raises DataError naming it."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise DataError(f"checkpoint {path} does not exist")
    try:
        with safe_open(str(path), framework="np") as f:
            raw_meta = (f.metadata() or {}).get(META_KEY)
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118 - safe_open is not iterable
    except Exception as e:  # noqa: BLE001 - safetensors raises several types for damaged files
        raise DataError(
            f"checkpoint {path} is corrupt or not a safetensors file ({e})"
        ) from None
    if raw_meta is None:
        raise DataError(
            f"checkpoint {path} has no tilegraph metadata; it was not written by `tilegraph train`"
        )
    try:
        meta = json.loads(raw_meta)
    except json.JSONDecodeError as e:
        raise DataError(f"checkpoint {path} has corrupt metadata ({e})") from None
    if meta.get("format") != FORMAT:
        raise DataError(
            f"checkpoint {path} has format {meta.get('format')!r}; this tilegraph reads {FORMAT!r}"
        )
    for key in ("step", "spec", "config"):
        if key not in meta:
            raise DataError(f"checkpoint {path} metadata lacks {key!r}; it is corrupt")
    for name, t in tensors.items():
        if t.dtype.kind == "f" and not np.isfinite(t).all():
            raise DataError(
                f"checkpoint {path}: tensor {name!r} holds {int((~np.isfinite(t)).sum())} non-finite values; "
                f"a model cannot continue from it"
            )
    return Checkpoint(tensors, meta, path)


def check_belongs_to_run(ckpt: Checkpoint, run_id: str | None, spec: dict, run_dir: Path) -> None:
    """DataError unless `ckpt` was written by the run `run_id` (or, for runs from before run ids, by a run
    of the same spec): a checkpoint copied in from another run must not be resumed silently."""
    theirs = ckpt.meta.get("run_id")
    if run_id is not None and theirs is not None and theirs != run_id:
        raise DataError(
            f"checkpoint {ckpt.path} was written by another run (run id {theirs}, spec "
            f"{ckpt.meta['spec'].get('name')!r}), not by the run in {run_dir} (run id {run_id}); move it out of "
            f"{run_dir} or resume its own run"
        )
    if ckpt.meta["spec"] != spec:
        raise DataError(
            f"checkpoint {ckpt.path} holds a model spec that differs from the run's ({run_dir / 'config.json'}); "
            f"it belongs to another run: move it out of {run_dir}"
        )


def check_tensors_match(ckpt: Checkpoint, expected: dict[str, tuple[tuple[int, ...], str]]) -> None:
    """Raise DataError unless the checkpoint holds exactly the expected tensor names, shapes and dtypes."""
    missing = sorted(set(expected) - set(ckpt.tensors))
    extra = sorted(set(ckpt.tensors) - set(expected))
    if missing or extra:
        raise DataError(
            f"checkpoint {ckpt.path} does not match the model: missing {missing[:5]}, unexpected {extra[:5]}"
        )
    for name, (shape, dtype) in expected.items():
        t = ckpt.tensors[name]
        if tuple(t.shape) != tuple(shape) or str(t.dtype) != dtype:
            raise DataError(
                f"checkpoint {ckpt.path}: tensor {name!r} is {t.dtype}{list(t.shape)}, the model needs {dtype}{list(shape)}"
            )


class RunCheckpoints:
    """The checkpoints of one run directory: ckpt-step<N>.safetensors (last `keep`) and best.safetensors."""

    def __init__(self, run_dir: str | Path, keep: int = 3):
        if keep < 1:
            raise DataError(f"--keep must be at least 1, got {keep}")
        self.dir = Path(run_dir)
        self.keep = keep

    def step_path(self, step: int) -> Path:
        return self.dir / f"ckpt-step{step:06d}.safetensors"

    @property
    def best_path(self) -> Path:
        return self.dir / BEST_NAME

    def steps(self) -> list[int]:
        """Steps of the step checkpoints present, ascending."""
        if not self.dir.is_dir():
            return []
        found = (_STEP_FILE.match(p.name) for p in self.dir.iterdir())
        return sorted(int(m.group(1)) for m in found if m)

    def latest(self) -> Path | None:
        steps = self.steps()
        return self.step_path(steps[-1]) if steps else None

    def remove_stale_temporaries(self) -> list[Path]:
        """Temporary files left by a process killed while saving (never a valid checkpoint)."""
        return remove_stale_temporaries(self.dir)

    def save(self, step: int, tensors: dict[str, np.ndarray], meta: dict, is_best: bool) -> Path:
        """Write the step checkpoint (and, when `is_best`, the same bytes as a separate best.safetensors),
        then prune old step checkpoints."""
        data = checkpoint_bytes(tensors, meta)
        path = write_atomic(self.step_path(step), data)
        if is_best:
            write_atomic(self.best_path, data)
        for old in self.steps()[: -self.keep]:
            self.step_path(old).unlink(missing_ok=True)
        return path

    def candidates(self, prefer_best: bool) -> list[Path]:
        """Checkpoint files, in the order a command tries them: best first when `prefer_best`, then newest step."""
        steps = [self.step_path(s) for s in reversed(self.steps())]
        best = [self.best_path] if self.best_path.is_file() else []
        return best + steps if prefer_best else steps + best


def choose_checkpoint(run_dir: Path, explicit: str | Path | None, prefer_best: bool, flag_hint: str) -> Checkpoint:
    """The checkpoint a command uses: `explicit` (--checkpoint FILE) when given, else the default (best for
    sampling, the newest step for resuming). A default that does not load is NOT skipped silently: the command
    stops, names the file and why, and names the newest file that does load with the option to use it
    (`flag_hint`, e.g. "tilegraph train --resume DIR --checkpoint"), so the user decides whether to lose steps."""
    if explicit is not None:
        return load_checkpoint(explicit)
    store = RunCheckpoints(run_dir)
    order = store.candidates(prefer_best)
    if not order:
        raise DataError(f"run directory {run_dir} holds no checkpoint (ckpt-step*.safetensors)")
    try:
        return load_checkpoint(order[0])
    except DataError as first:
        for other in order[1:]:
            try:
                load_checkpoint(other)
            except DataError:
                continue
            raise DataError(f"{first}; the newest checkpoint that loads is {other}: {flag_hint} {other}") from None
        raise DataError(f"{first}; no other checkpoint in {run_dir} loads either") from None
