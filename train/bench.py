"""Training throughput of the default recipe on the numpy backend, against a GEMM-only baseline.

    python -m tilegraph.train.bench [--spec specs/nano-trickster.yaml] [--steps 10] [--batch 16] [--seq 256] [--profile]
                                    [--torch .venv-torch/bin/python]

The baseline runs, in the same process, a float32 GEMM workload with the FLOPs of one training step: the
matmuls of every linear layer and the tied output projection (forward and both backward products, at their real
shapes, preallocated outputs) plus the attention products' FLOPs as extra matmuls of the same kind. It bounds what a numpy training step can reach on this machine, so the ratio says how
much time goes to everything else (elementwise work, temporaries, Python).

`--torch PYTHON` also times bench/torch_baseline.py (an independent PyTorch eager implementation of the same
step, run by a Python that has torch: `make bench-torch` creates .venv-torch) before and after the numpy
measurement, and prints the ratio to the better of its two runs. Only nano-trickster's shapes are supported there.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tilegraph.errors import TilegraphError

DEFAULT_SPEC = Path(__file__).resolve().parent.parent / "specs" / "nano-trickster.yaml"
TORCH_BASELINE = Path(__file__).resolve().parent.parent / "bench" / "torch_baseline.py"


def gemm_shapes(spec, batch: int, seq: int) -> list[tuple[int, int, int]]:
    """(M, K, N) of every weight matmul of one training step: forward, and both backward products."""
    t, h, f = batch * seq, spec.hidden_size, spec.mlp_hidden
    q_out, kv_out = spec.num_heads * spec.head_dim, spec.num_kv_heads * spec.head_dim
    linears = [(h, q_out), (h, kv_out), (h, kv_out), (q_out, h), (h, f), (h, f), (f, h)]  # per layer, [K, N]
    shapes = []
    for k, n in linears * spec.num_layers + [(h, spec.vocab_size)]:
        shapes += [(t, k, n), (t, n, k), (k, t, n)]  # y = x w; dx = dy w^T; dw = x^T dy
    return shapes


def attention_flops(spec, batch: int, seq: int) -> int:
    """Matmul FLOPs of attention in one step: q k^T and p v forward, four products backward, full S x S."""
    return 6 * 2 * batch * spec.num_heads * seq * seq * spec.head_dim * spec.num_layers


def step_flops(spec, batch: int, seq: int) -> int:
    return sum(2 * m * k * n for m, k, n in gemm_shapes(spec, batch, seq)) + attention_flops(spec, batch, seq)


class GemmBaseline:
    """A float32 GEMM workload with the FLOPs of one training step: the step's weight matmuls at their real
    shapes (preallocated outputs), plus the attention products' FLOPs as extra [T, H] x [H, H] matmuls."""

    def __init__(self, spec, batch: int, seq: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        shapes = gemm_shapes(spec, batch, seq)
        t, h = batch * seq, spec.hidden_size
        extra = round(attention_flops(spec, batch, seq) / (2 * t * h * h))
        self.flops = sum(2 * m * k * n for m, k, n in shapes) + extra * 2 * t * h * h
        self.calls = []
        for m, k, n in shapes + [(t, h, h)] * extra:
            a = rng.standard_normal((m, k), dtype=np.float32)
            w = rng.standard_normal((k, n), dtype=np.float32)
            self.calls.append((a, w, np.empty((m, n), np.float32)))

    def run(self) -> None:
        for a, w, out in self.calls:
            np.matmul(a, w, out=out)


@dataclass
class BenchResult:
    tokens_per_step: int
    train_seconds: float  # median seconds per training step
    gemm_seconds: float  # median seconds of the step's matmuls alone

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_per_step / self.train_seconds

    @property
    def gemm_tokens_per_second(self) -> float:
        return self.tokens_per_step / self.gemm_seconds

    @property
    def ratio(self) -> float:
        """Training throughput as a fraction of the GEMM-only bound (1.0 = nothing but matmuls)."""
        return self.gemm_seconds / self.train_seconds


class TrainingStep:
    """One optimizer step of the default recipe on real data batches per call (a fresh model from `seed`)."""

    def __init__(self, spec, batch: int, seq: int, seed: int = 0):
        from tilegraph.graph import init_params
        from tilegraph.train.data import BatchSampler, load_text
        from tilegraph.train.lr_schedule import WarmupCosine
        from tilegraph.train.model import TrainingPrograms

        self.programs = TrainingPrograms(spec, batch, seq)
        self.state = self.programs.init_state(init_params(spec, seed))
        self.sampler = BatchSampler(load_text(None, seq).train, batch, seq, seed)
        self.schedule = WarmupCosine(1e-3, 1e-4, 100, 1500)
        self.step = 0

    def __call__(self):
        self.step += 1
        tokens, targets = self.sampler.next_batch()
        return self.programs.train_step(self.state, tokens, targets, self.schedule(self.step), self.step)

    def profile(self, repeats: int = 3) -> str:
        """Per-op-kind time table of the training-step Program (the runtime's profiler), on the next batch."""
        tokens, targets = self.sampler.next_batch()
        feeds = {
            "tokens": tokens,
            "targets": targets,
            "lr": self.schedule(self.step + 1),
            "step": float(self.step + 1),
        }
        return self.programs.train_program.profile(self.state, feeds, repeats=repeats)


def make_training_step(spec, batch: int, seq: int, seed: int = 0) -> TrainingStep:
    return TrainingStep(spec, batch, seq, seed)


def _median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def measure(spec, batch: int = 16, seq: int = 256, steps: int = 10, warmup: int = 2) -> BenchResult:
    step = make_training_step(spec, batch, seq)
    for _ in range(warmup):  # first calls allocate buffers and warm BLAS
        step()
    train = _median_seconds(step, steps)
    gemms = GemmBaseline(spec, batch, seq)
    gemms.run()
    gemm = _median_seconds(gemms.run, max(3, steps // 2))
    return BenchResult(batch * seq, train, gemm)


def torch_tokens_per_second(python: str, batch: int, seq: int, steps: int) -> float:
    """tokens/s of the PyTorch eager reference (bench/torch_baseline.py) run by `python`, in a child process."""
    import json
    import subprocess

    if not TORCH_BASELINE.exists():
        raise TilegraphError(f"{TORCH_BASELINE} is missing (it ships with the repository, not the package)")
    cmd = [python, str(TORCH_BASELINE), "--json", "--batch", str(batch), "--seq", str(seq), "--steps", str(steps)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as e:
        raise TilegraphError(f"--torch {python}: cannot run it ({e}); `make bench-torch` creates .venv-torch") from None
    if proc.returncode != 0:
        raise TilegraphError(f"--torch {python}: the PyTorch baseline failed:\n{proc.stderr.strip()[-2000:]}")
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["tokens_per_s"])


def main(argv: list[str] | None = None) -> int:
    import sys

    try:
        return _main(argv)
    except TilegraphError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    from tilegraph.graph.spec import load_spec

    parser = argparse.ArgumentParser(
        prog="python -m tilegraph.train.bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--spec", default=str(DEFAULT_SPEC))
    parser.add_argument("--steps", type=int, default=10, help="timed training steps (median is reported)")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--profile", action="store_true", help="also print the time per op kind of one step")
    parser.add_argument("--torch", metavar="PYTHON", help="also time the PyTorch eager reference with this Python")
    args = parser.parse_args(argv)
    spec = load_spec(args.spec)
    if args.torch and spec.name != "nano-trickster":
        parser.error(f"--torch compares nano-trickster only (bench/torch_baseline.py); the spec is {spec.name!r}")
    torch_runs = [torch_tokens_per_second(args.torch, args.batch, args.seq, args.steps)] if args.torch else []
    r = measure(spec, args.batch, args.seq, args.steps)
    if args.torch:
        torch_runs.append(torch_tokens_per_second(args.torch, args.batch, args.seq, args.steps))
    flops = step_flops(spec, args.batch, args.seq)
    print(f"{spec.name}: batch {args.batch} x seq {args.seq}, numpy backend, median of {args.steps} steps")
    print(f"training:        {r.train_seconds * 1e3:8.1f} ms/step  {r.tokens_per_second:8,.0f} tokens/s")
    print(
        f"GEMM-only bound: {r.gemm_seconds * 1e3:8.1f} ms/step  {r.gemm_tokens_per_second:8,.0f} tokens/s"
        f"  ({flops / 1e9:.1f} GFLOP, {flops / r.gemm_seconds / 1e9:.0f} GFLOP/s)"
    )
    print(f"ratio training/GEMM-bound throughput: {r.ratio:.2f}")
    if torch_runs:
        best = max(torch_runs)
        print(f"PyTorch eager:   {args.batch * args.seq / best * 1e3:8.1f} ms/step  {best:8,.0f} tokens/s"
              f"  (best of runs before and after: {', '.join(f'{x:,.0f}' for x in torch_runs)})")
        print(f"ratio tilegraph/PyTorch throughput: {r.tokens_per_second / best:.2f}")
    if args.profile:
        step = TrainingStep(spec, args.batch, args.seq)
        step()  # allocate buffers before timing
        print(step.profile())
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
