"""Learning-rate schedule: linear warmup, then cosine decay to a floor at the last step."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class WarmupCosine:
    """lr(step) for 1-based steps 1..total_steps.

    Steps 1..warmup ramp linearly from peak/warmup up to peak; from `warmup` to `total_steps` the rate follows
    half a cosine from `peak` down to `floor`, reaching `floor` exactly at the last step.
    """

    peak: float
    floor: float
    warmup: int
    total_steps: int

    def __call__(self, step: int) -> float:
        if step <= self.warmup:
            return self.peak * step / self.warmup
        decay_steps = self.total_steps - self.warmup
        progress = min(1.0, (step - self.warmup) / decay_steps)
        return self.floor + 0.5 * (self.peak - self.floor) * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class ContinuedCosine:
    """The rate of a run extended (`--resume --steps N`) after its warmup: from `start_lr` at step `start`,
    half a cosine down to `floor` at `total_steps`, so the rate never jumps. Defined for steps after `start`
    (the steps up to it were trained before the extension)."""

    start: int
    start_lr: float
    floor: float
    total_steps: int

    def __call__(self, step: int) -> float:
        if step <= self.start:
            raise ValueError(f"step {step} was trained before the run was extended at step {self.start}")
        progress = min(1.0, (step - self.start) / (self.total_steps - self.start))
        return self.floor + 0.5 * (self.start_lr - self.floor) * (1.0 + math.cos(math.pi * progress))


def learning_rate_schedule(config):
    """The schedule of a TrainConfig: warmup + cosine, or its smooth continuation once extended."""
    if config.decay_from is not None:
        start, start_lr = config.decay_from
        return ContinuedCosine(int(start), float(start_lr), config.min_lr, config.steps)
    return WarmupCosine(config.lr, config.min_lr, config.warmup, config.steps)
