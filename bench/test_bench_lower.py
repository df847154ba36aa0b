"""Time to lower llama-3-70b onto galaxy (build, autodiff, shard, memory plan + schedule, cost): the training step,
and the prefill and decode steps in the 2-D layout.

Baseline in the same run: building and differentiating the graph alone (what any lowering must at least do), so the
ratio is what sharding, planning and costing add on top. The whole pipeline has to stay well under 5 s.

    .venv/bin/python -m pytest bench/test_bench_lower.py --benchmark-only -s
"""

from __future__ import annotations

from pathlib import Path

from tilegraph.graph import training_step
from tilegraph.graph.lowering import lower
from timing import interleaved_medians

SPEC = str(Path(__file__).resolve().parent.parent / "specs" / "llama-3-70b.yaml")


def test_lower_llama_70b_galaxy_train(benchmark):
    def full():
        return lower(SPEC, "galaxy", "train")

    def baseline():
        return training_step(SPEC, 4, 8192)

    t_full, t_base = interleaved_medians([full, baseline], n=3)
    sharded = benchmark.pedantic(full, rounds=1, iterations=1)
    print(
        f"\nllama-3-70b train step on galaxy: {len(sharded.graph.nodes)} steps; lower {t_full:.2f} s, "
        f"build+autodiff alone {t_base:.2f} s, ratio {t_full / t_base:.2f}"
    )


def test_lower_llama_70b_galaxy_inference(benchmark):
    """Prefill (seq 128) and decode (context 228) of llama-3-70b on galaxy, 2-D layout."""

    def both():
        return lower(SPEC, "galaxy", "prefill"), lower(SPEC, "galaxy", "decode")

    pre, dec = benchmark.pedantic(both, rounds=1, iterations=1)
    assert pre.graph.layout == dec.graph.layout == "2d"
    print(f"\nllama-3-70b on galaxy: prefill {len(pre.graph.nodes)} steps, decode {len(dec.graph.nodes)} steps")
