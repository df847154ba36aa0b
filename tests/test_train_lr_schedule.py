"""The learning-rate schedule: linear warmup to the peak, cosine down to the floor at the last step."""

import itertools
import math

import pytest
from tilegraph.train.lr_schedule import WarmupCosine


def test_recipe_schedule_values():
    lr = WarmupCosine(peak=1e-3, floor=1e-4, warmup=100, total_steps=1500)
    assert lr(1) == pytest.approx(1e-5)  # 1/100 of the peak
    assert lr(50) == pytest.approx(5e-4)
    assert lr(100) == pytest.approx(1e-3)
    # Half-way through the decay the cosine is at 0: the mean of peak and floor.
    assert lr(800) == pytest.approx(5.5e-4)
    assert lr(1500) == pytest.approx(1e-4)


def test_warmup_is_linear_and_decay_is_monotonic():
    lr = WarmupCosine(peak=2e-3, floor=0.0, warmup=10, total_steps=60)
    ramp = [lr(s) for s in range(1, 11)]
    assert all(b - a == pytest.approx(2e-4) for a, b in itertools.pairwise(ramp))
    decay = [lr(s) for s in range(10, 61)]
    assert all(b < a for a, b in itertools.pairwise(decay))
    # A quarter of the way: floor + (peak - floor) * (1 + cos(pi/4)) / 2.
    assert lr(10 + 50 // 4 * 1) == pytest.approx(2e-3 * (1 + math.cos(math.pi * 12 / 50)) / 2)


def test_no_warmup_starts_at_peak_and_short_runs_end_at_floor():
    lr = WarmupCosine(peak=1.0, floor=0.1, warmup=0, total_steps=2)
    assert lr(2) == pytest.approx(0.1)
    assert lr(1) == pytest.approx(0.1 + 0.9 * (1 + math.cos(math.pi / 2)) / 2)
