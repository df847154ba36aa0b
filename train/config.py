"""The training recipe as a dataclass. Kept free of heavy imports: `tilegraph train --help` reads its defaults."""

from __future__ import annotations

from dataclasses import dataclass

from tilegraph.errors import DataError


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
    data: str | None = None  # None: the shipped tiny-shakespeare
    tokenizer: str = "bytes"  # or "bpe:N" (train/tokenizer.py)

    def validate(self) -> None:
        for name in ("steps", "batch", "seq", "eval_interval", "eval_batches", "keep"):
            if getattr(self, name) < 1:
                raise DataError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise DataError(f"--warmup must be >= 0, got {self.warmup}")
        if not (self.lr > 0 and self.min_lr >= 0 and self.min_lr <= self.lr):
            raise DataError(
                f"need 0 <= --min-lr <= --lr and --lr > 0; got lr={self.lr}, min-lr={self.min_lr}"
            )
