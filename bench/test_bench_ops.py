"""Speed of the ops' fast paths (numpy, BLAS and the CPU kernels of kernels/cpu), as ratios against baselines
measured in the same run (the CPU is shared, so absolute times drift; ratios of interleaved runs hold up).

1. attention forward+backward at nano-trickster shapes: fast path against the float32 reference (explicit
   masked softmax, P kept in memory).
2. one nano-trickster training step (batch 16, seq 256): every step of the Program against only its gemm steps
   (linear, linear_wgrad). The ratio is the price of everything that is not a big gemm (attention, norms,
   activations, loss, optimizer); 1.0 would mean the step runs at gemm speed.

    .venv/bin/python -m pytest bench/test_bench_ops.py --benchmark-only -s
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import timing
from tilegraph.graph import AdamWConfig, init_params, load_spec, training_step
from tilegraph.ops import get_op
from timing import interleaved_medians

from tilegraph.compiler import compile

SPEC = Path(__file__).resolve().parent.parent / "specs" / "nano-trickster.yaml"
GEMM_OPS = ("linear", "linear_wgrad")


def test_attention_fast_path_vs_reference(benchmark):
    b, s, heads, d = 4, 256, 8, 32
    rng = np.random.default_rng(0)
    q, k, v, do = (rng.standard_normal((b, s, heads * d)).astype(np.float32) for _ in range(4))
    attrs = {"heads": heads, "kv_heads": heads, "causal": True, "scale": 1 / math.sqrt(d)}
    fwd, bwd = get_op("attention"), get_op("attention_bwd")
    o, lse = np.empty_like(q), np.empty((b, heads, s), np.float32)
    grads = [np.empty_like(q) for _ in range(3)]

    def fast():
        fwd.numpy_into([q, k, v], [o, lse], attrs)
        bwd.numpy_into([q, k, v, o, lse, do], grads, attrs)

    def reference():
        o_ref, lse_ref = fwd.reference([q, k, v], attrs)
        bwd.reference([q, k, v, o_ref, lse_ref, do], attrs)

    fast_s, ref_s = interleaved_medians([fast, reference], n=5)
    benchmark.pedantic(fast, rounds=3, iterations=1)
    print(f"\nattention fwd+bwd B={b} S={s} heads={heads} D={d}: fast {fast_s * 1e3:.1f} ms, "
          f"reference {ref_s * 1e3:.1f} ms, speed-up x{ref_s / fast_s:.2f}")


@pytest.fixture(scope="module")
def nano_step():
    spec = load_spec(SPEC)
    b, s = (2, 64) if timing.SMOKE else (16, 256)  # the smoke run only checks that the suite works
    prog = compile(training_step(spec, b, s, AdamWConfig()))
    state = prog.init_state(init_params(spec, 0))
    rng = np.random.default_rng(0)
    toks = rng.integers(0, spec.vocab_size, (b, s + 1)).astype(np.int32)
    feeds = {"tokens": toks[:, :-1].copy(), "targets": toks[:, 1:].copy(), "lr": 1e-4, "step": 1.0}
    prog.run(state, feeds)  # allocate and bind once
    return prog, state, feeds, b * s


def test_training_step_vs_its_gemms(benchmark, nano_step):
    prog, state, feeds, tokens = nano_step
    calls = prog._executors["numpy"].calls
    gemms = [c for c, step in zip(calls, prog.steps) if step.op in GEMM_OPS]

    def gemms_only():
        for fn, ins, outs, attrs in gemms:
            fn(ins, outs, attrs)

    step_s, gemm_s = interleaved_medians([lambda: prog.run(state, feeds), gemms_only], n=3)
    benchmark.pedantic(prog.run, args=(state, feeds), rounds=2, iterations=1)
    print(f"\nnano-trickster step (B*S={tokens}): {step_s * 1e3:.0f} ms = {tokens / step_s:.0f} tokens/s; "
          f"its {len(gemms)} gemms alone {gemm_s * 1e3:.0f} ms = {tokens / gemm_s:.0f} tokens/s; "
          f"step/gemms ratio {step_s / gemm_s:.2f}")
