"""Train nano-trickster on the numpy backend and on the emu backend (every kernel step in the kernel emulator)
with the same seed and batches; write both loss curves (JSON + one PNG) and the emulator's seconds per step.

    .venv/bin/python bench/train_emu_vs_numpy.py --steps 200 --batch 4 --seq 128 --out notes/train-emu-vs-numpy
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def run(target, spec, steps, batch, seq, seed, lr):
    from tilegraph.graph import init_params
    from tilegraph.train.data import BatchSampler, load_text
    from tilegraph.train.lr_schedule import WarmupCosine
    from tilegraph.train.model import TrainingPrograms

    programs = TrainingPrograms(spec, batch, seq, target=target)
    state = programs.init_state(init_params(spec, seed))
    sampler = BatchSampler(load_text(None, seq).train, batch=batch, seq=seq, seed=seed)
    schedule = WarmupCosine(peak=lr, floor=lr / 10, warmup=min(20, steps), total_steps=steps)
    losses, seconds = [], []
    for step in range(1, steps + 1):
        x, y = sampler.next_batch()
        t0 = time.perf_counter()
        r = programs.train_step(state, x, y, schedule(step), step)
        seconds.append(time.perf_counter() - t0)
        losses.append(r.loss)
    return programs, losses, seconds


def main():
    from tilegraph.compiler import Target
    from tilegraph.graph import load_spec

    p = argparse.ArgumentParser()
    p.add_argument("--spec", default="specs/nano-trickster.yaml")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--out", default="notes/train-emu-vs-numpy")
    a = p.parse_args()
    spec = load_spec(a.spec)
    _, ref, ref_s = run(Target(backend="numpy"), spec, a.steps, a.batch, a.seq, a.seed, a.lr)
    emu_programs, emu, emu_s = run(Target(backend="emu"), spec, a.steps, a.batch, a.seq, a.seed, a.lr)
    placed = {}
    for step in emu_programs.train_program.steps:
        placed.setdefault(step.impl, []).append(step.op)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"steps": a.steps, "batch": a.batch, "seq": a.seq, "seed": a.seed, "numpy": ref, "emu": emu,
              "emu_seconds_per_step": float(np.median(emu_s)), "numpy_seconds_per_step": float(np.median(ref_s)),
              "placement": {k: sorted(set(v)) for k, v in placed.items()},
              "placement_counts": {k: len(v) for k, v in placed.items()}}
    out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    xs = np.arange(1, a.steps + 1)
    ax.plot(xs, ref, label="numpy backend (float32)")
    ax.plot(xs, emu, label="emu backend (kernels in the emulator, bf16)", alpha=0.8)
    ax.set_ylabel("training loss (nats/byte)")
    ax.legend()
    ax.set_title(f"nano-trickster, batch {a.batch} x seq {a.seq}, seed {a.seed}")
    bx.plot(xs, np.array(emu) - np.array(ref))
    bx.set_ylabel("emu - numpy")
    bx.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=100)
    for s in range(0, a.steps, 20):
        print(f"step {s + 1:4d}  numpy {ref[s]:.4f}  emu {emu[s]:.4f}  diff {emu[s] - ref[s]:+.4f}")
    print(f"emu s/step {result['emu_seconds_per_step']:.2f}, numpy s/step {result['numpy_seconds_per_step']:.3f}")
    print(json.dumps(result["placement"], indent=1))


if __name__ == "__main__":
    main()
