"""The training recipe as a dataclass. Kept free of heavy imports: `tilegraph train --help` reads its defaults."""

from __future__ import annotations

import math
from dataclasses import dataclass

from tilegraph.errors import DataError

DEVICES = ("cpu", "emu", "n150", "n300", "t3k", "galaxy")


@dataclass
class TrainConfig:
    """The recipe. Defaults are the CPU recipe of `tilegraph train` (batch 16 x seq 256, AdamW, warmup+cosine)."""

    steps: int = 1500
    batch: int = 16
    seq: int = 256
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 100
    eval_interval: int = 100
    eval_batches: int = 10
    seed: int = 1337
    keep: int = 3
    data: str | None = None  # None: the shipped tiny-shakespeare; stored absolute
    tokenizer: str = "bytes"  # or "bpe:N" (train/tokenizer.py)
    decay_from: list | None = None  # [step, lr]: set when a run is extended after warmup (see extend_to)
    device: str = "cpu"  # cpu (numpy backend), emu (kernel steps in the emulator) or a card: n150, n300, t3k, galaxy

    def extend_to(self, steps: int, done: int) -> None:
        """Make the run `steps` long after `done` steps. Past warmup the rate then continues from its current
        value down to min_lr at the new last step (no jump back up); within warmup the plain schedule with
        the new length is already smooth."""
        from tilegraph.train.lr_schedule import learning_rate_schedule

        if done > self.warmup:
            self.decay_from = [done, learning_rate_schedule(self)(done)]
        self.steps = steps

    def validate(self) -> None:
        if self.device not in DEVICES:
            raise DataError(f"--device {self.device!r} must be one of {', '.join(DEVICES)}")
        for name in ("steps", "batch", "seq", "eval_interval", "eval_batches", "keep"):
            if getattr(self, name) < 1:
                raise DataError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise DataError(f"--seed must be >= 0, got {self.seed}")
        if self.warmup < 0:
            raise DataError(f"--warmup must be >= 0, got {self.warmup}")
        if not (math.isfinite(self.lr) and self.lr > 0 and self.min_lr >= 0 and self.min_lr <= self.lr):
            raise DataError(
                f"need 0 <= --min-lr <= --lr and --lr > 0; got lr={self.lr}, min-lr={self.min_lr}"
            )
