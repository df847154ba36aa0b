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
