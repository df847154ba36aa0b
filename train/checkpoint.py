"""Checkpoints: one safetensors file holding parameters, optimizer state and JSON metadata.

The metadata (model spec, step, data-sampler state, run config, losses so far) is stored as JSON under the
safetensors metadata key "tilegraph". Files are written atomically: bytes go to a temporary file in the same
directory, are fsync'ed, then `os.replace`d over the target, so a crash or kill during a save leaves either the
old file or the new one, never half of one. `RunCheckpoints` keeps the last K step checkpoints of a run
directory plus the one with the best validation loss.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tilegraph.errors import DataError

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


def _fsync_dir(directory: Path) -> None:
    # The rename itself must reach the disk, not only the file contents (POSIX; a no-op where unsupported).
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the complete new one, never a partial one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        # Includes KeyboardInterrupt: never leave the temporary file behind.
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)


def save_checkpoint(path: str | Path, tensors: dict[str, np.ndarray], meta: dict) -> Path:
    """Atomically write tensors + metadata to `path` (a .safetensors file)."""
    from safetensors.numpy import save

    path = Path(path)
    meta_json = json.dumps({"format": FORMAT, **meta})
    contiguous = {name: np.ascontiguousarray(a) for name, a in tensors.items()}
    write_atomic(path, save(contiguous, metadata={META_KEY: meta_json}))
    return path


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
            f"checkpoint {path} is corrupt or not a safetensors file ({e}); use another checkpoint"
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
    return Checkpoint(tensors, meta, path)


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

    def remove_stale_temporaries(self) -> None:
        """Temporary files left by a process killed while saving (never a valid checkpoint)."""
        for p in self.dir.glob(".*.tmp"):
            p.unlink(missing_ok=True)

    def save(self, step: int, tensors: dict[str, np.ndarray], meta: dict, is_best: bool) -> Path:
        """Write the step checkpoint (and best.safetensors when `is_best`), then prune old step checkpoints."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = save_checkpoint(self.step_path(step), tensors, meta)
        if is_best:
            self._mark_best(path)
        for old in self.steps()[: -self.keep]:
            self.step_path(old).unlink(missing_ok=True)
        return path

    def _mark_best(self, path: Path) -> None:
        # A hard link shares the bytes just written; linking to a temporary name and renaming keeps it atomic.
        tmp = self.dir / f".{BEST_NAME}.link.tmp"
        tmp.unlink(missing_ok=True)
        try:
            os.link(path, tmp)
        except OSError:  # file system without hard links: write a copy instead (still atomic)
            write_atomic(self.best_path, path.read_bytes())
            return
        os.replace(tmp, self.best_path)
        _fsync_dir(self.dir)
