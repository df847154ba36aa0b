"""Train nano-trickster on the numpy backend and on the emu backend (every kernel step in the kernel emulator)
with the same seed and batches; write both loss curves (JSON + one PNG) and the seconds per step.

    .venv/bin/python bench/train_emu_vs_numpy.py run numpy --steps 200 --batch 4 --seq 64 --out notes/train
    .venv/bin/python bench/train_emu_vs_numpy.py run emu   --steps 200 --batch 4 --seq 64 --out notes/train
    .venv/bin/python bench/train_emu_vs_numpy.py plot --out notes/train      # notes/train.png, the table

The two runs are separate processes (they may run at once). The tracking bound: every kernel step rounds its
inputs and outputs to bf16 (unit roundoff u = 2^-8); R such roundings lie in series between the tokens and the
loss, so treating them as independent uniform errors the loss moves by a relative sqrt(R / 3) u per sigma; we
allow 3 sigma, B = sqrt(3 R) u |loss|, on the 20-step (10-step for short runs) means of both curves (the same batches in both runs).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np


def run(backend: str, steps: int, batch: int, seq: int, seed: int, lr: float, out: Path) -> None:
    from tilegraph.graph import init_params, load_spec
    from tilegraph.train.data import BatchSampler, load_text
    from tilegraph.train.lr_schedule import WarmupCosine
    from tilegraph.train.model import TrainingPrograms

    from tilegraph.compiler import Target

    spec = load_spec("specs/nano-trickster.yaml")
    programs = TrainingPrograms(spec, batch, seq, target=Target(backend=backend))
    state = programs.init_state(init_params(spec, seed))
    sampler = BatchSampler(load_text(None, seq).train, batch=batch, seq=seq, seed=seed)
    # The schedule is the `steps`-long recipe's; the results are rewritten every few steps, so a run stopped early
    # is still a prefix of the same run on both backends.
    schedule = WarmupCosine(peak=lr, floor=lr / 10, warmup=min(20, steps), total_steps=steps)
    placed: dict[str, list[str]] = {}
    for s in programs.train_program.steps:
        placed.setdefault(s.impl, []).append(s.op)
    losses, seconds = [], []
    out.parent.mkdir(parents=True, exist_ok=True)
    for step in range(1, steps + 1):
        x, y = sampler.next_batch()
        t0 = time.perf_counter()
        losses.append(programs.train_step(state, x, y, schedule(step), step).loss)
        seconds.append(time.perf_counter() - t0)
        print(f"{backend} step {step} loss {losses[-1]:.4f} {seconds[-1]:.2f} s", flush=True)
        if step % 5 == 0 or step == steps:
            result = {"backend": backend, "steps": steps, "batch": batch, "seq": seq, "seed": seed, "lr": lr,
                      "loss": losses, "seconds": seconds,
                      "median_seconds_per_step": float(np.median(seconds[1:] or seconds)),
                      "placement": {k: {op: v.count(op) for op in dict.fromkeys(v)} for k, v in placed.items()}}
            Path(f"{out}-{backend}.json").write_text(json.dumps(result, indent=1))


def plot(out: Path) -> None:
    ref = json.loads(Path(f"{out}-numpy.json").read_text())
    emu = json.loads(Path(f"{out}-emu.json").read_text())
    n = min(len(ref["loss"]), len(emu["loss"]))
    a, b = np.array(ref["loss"][:n]), np.array(emu["loss"][:n])
    kernel_steps = sum(sum(c.values()) for k, c in emu["placement"].items() if k.startswith("kernel:"))
    fwd_kernel_steps = sum(c for k, cs in emu["placement"].items() if k.startswith("kernel:")
                           for op, c in cs.items() if not op.endswith("_bwd"))
    r = 2 * fwd_kernel_steps  # bf16 roundings in series on the forward path (inputs and outputs of each kernel step)
    u = 2.0**-8
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(2, 1, figsize=(7, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    xs = np.arange(1, n + 1)
    ax.plot(xs, a, label="numpy backend (float32)")
    ax.plot(xs, b, label=f"emu backend ({kernel_steps} kernel steps per training step, bf16)", alpha=0.8)
    ax.set_ylabel("training loss (nats/byte)")
    ax.legend()
    ax.set_title(f"nano-trickster, batch {ref['batch']} x seq {ref['seq']}, seed {ref['seed']}")
    window = 10 if n < 100 else 20
    means = [(i + window, a[i:i + window].mean(), b[i:i + window].mean()) for i in range(0, n - window + 1, window)]
    bound = [math.sqrt(3 * r) * u * abs(m) for _, m, _ in means]
    bx.plot(xs, b - a, lw=0.7, label="emu - numpy")
    bx.step([m[0] for m in means], [m[2] - m[1] for m in means], where="pre", label=f"{window}-step mean")
    bx.step([m[0] for m in means], bound, "k--", where="pre", lw=0.8, label="bound")
    bx.step([m[0] for m in means], [-x for x in bound], "k--", where="pre", lw=0.8)
    bx.set_ylabel("emu - numpy")
    bx.set_xlabel("step")
    bx.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(f"{out}.png", dpi=100)
    print(f"R = {r} bf16 roundings on the forward path, bound = sqrt(3R) * 2^-8 * loss = {math.sqrt(3 * r) * u:.4f} * loss")
    print(f"| step | numpy | emu | emu - numpy | {window}-step means: numpy | emu | diff | bound |")
    print("|---|---|---|---|---|---|---|---|")
    for (end, ma, mb), bd in zip(means, bound):
        s = end - window  # the first step of the window, 0-based
        print(f"| {s + 1} | {a[s]:.4f} | {b[s]:.4f} | {b[s] - a[s]:+.4f} | {ma:.4f} | {mb:.4f} | {mb - ma:+.4f} | {bd:.4f} |")
    print(f"seconds per step (median): emu {emu['median_seconds_per_step']:.2f}, numpy {ref['median_seconds_per_step']:.3f}")
    print(json.dumps(emu["placement"], indent=1))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["run", "plot"])
    p.add_argument("backend", nargs="?", choices=["numpy", "emu"])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--out", default="notes/train-emu-vs-numpy")
    a = p.parse_args()
    if a.what == "run":
        run(a.backend, a.steps, a.batch, a.seq, a.seed, a.lr, Path(a.out))
    else:
        plot(Path(a.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
