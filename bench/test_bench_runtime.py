"""Executor overhead of the numpy backend: `Program.run` against calling the same op implementations directly.

Both sides do identical numeric work (the Program's own steps, buffers and argument lists), so the ratio is the
cost of the runtime itself: binding inputs, the step loop, in-place updates and copying the outputs. Measured on
a small nano-trickster step (batch 2, seq 64) where op time is short and overhead would show.

    .venv/bin/python -m pytest bench/test_bench_runtime.py --benchmark-only -s
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tilegraph.graph import init_params, load_spec, training_step
from timing import interleaved_medians

from tilegraph.compiler import compile

SPEC = Path(__file__).resolve().parent.parent / "specs" / "nano-trickster.yaml"
B, S = 2, 64


@pytest.fixture(scope="module")
def setup():
    spec = load_spec(SPEC)
    prog = compile(training_step(spec, B, S))
    state = prog.init_state(init_params(spec, 0))
    rng = np.random.default_rng(0)
    toks = rng.integers(0, spec.vocab_size, (B, S + 1)).astype(np.int32)
    feeds = {"tokens": toks[:, :-1].copy(), "targets": toks[:, 1:].copy(), "lr": 1e-4, "step": 1.0}
    prog.run(state, feeds)  # allocates buffers, binds inputs
    return prog, state, feeds


def _direct(prog):
    calls = prog._executors["numpy"].calls
    for fn, ins, outs, attrs in calls:
        fn(ins, outs, attrs)


def test_program_run_overhead(benchmark, setup):
    prog, state, feeds = setup
    run, baseline = interleaved_medians([lambda: prog.run(state, feeds), lambda: _direct(prog)], n=15)
    benchmark(prog.run, state, feeds)
    print(
        f"\n{len(prog)} steps: Program.run {run * 1e3:.2f} ms, direct op calls {baseline * 1e3:.2f} ms, "
        f"ratio {run / baseline:.3f} (1.0 = no runtime overhead)"
    )
