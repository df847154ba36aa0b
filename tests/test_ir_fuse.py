"""The fuse pass: SwiGLU gates become `swiglu`, and in training graphs their backward becomes `swiglu_bwd`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tilegraph.graph import autodiff, build, init_params, load_spec
from tilegraph.graph.passes.fuse import fuse
from tilegraph.graph.passes.verify import verify
from tilegraph.ops import get_op

from tilegraph.compiler import PASSES, Target, compile

SPEC = load_spec(Path(__file__).resolve().parent.parent / "specs" / "tiny-test.yaml")


def _ops(g):
    return [n.op for n in g.nodes]


def _evaluate(g, params, feeds):
    """The graph run node by node on the ops' references, with no pass in between (compile fuses)."""
    vals = {v: np.asarray((params if v.role == "param" else feeds)[v.name]) for v in g.inputs if v.role != "state"}
    for n in g.nodes:
        for v, r in zip(n.outputs, get_op(n.op).reference([vals[x] for x in n.inputs], n.attrs)):
            vals[v] = r
    return {k: vals[v] for k, v in g.outputs.items()}


def test_forward_graph_is_fused_and_computes_the_same():
    g = build(SPEC, 2, 5, dtype="float64")
    before = str(g)
    fused = verify(fuse(g))
    assert str(g) == before  # pure: the input graph is unchanged
    assert _ops(fused).count("swiglu") == SPEC.num_layers
    assert "silu_mul" not in _ops(fused)
    assert _ops(fused).count("linear") == _ops(g).count("linear") - 2 * SPEC.num_layers
    params = init_params(SPEC, seed=0, dtype="float64")
    toks = np.random.default_rng(0).integers(0, SPEC.vocab_size, (2, 6))
    feeds = {"tokens": toks[:, :-1], "targets": toks[:, 1:]}
    a, b = _evaluate(g, params, feeds), compile(g).run(params, feeds)
    assert _ops(compile(g).graph) == _ops(fused)  # compile ran the same fusion
    # float64, same math in another grouping: round-off only.
    np.testing.assert_allclose(b["logits"], a["logits"], rtol=1e-12, atol=1e-12)
    assert float(b["loss"]) == pytest.approx(float(a["loss"]), rel=1e-12)


def test_training_graph_fuses_the_gate_and_its_backward_and_computes_the_same():
    g = autodiff(build(SPEC, 2, 5, dtype="float64"), "loss")
    before = str(g)
    fused = verify(fuse(g))
    assert str(g) == before
    ops, layers = _ops(fused), SPEC.num_layers
    assert ops.count("swiglu") == ops.count("swiglu_bwd") == layers
    assert "silu_mul" not in ops and "silu_mul_bwd" not in ops
    # Per layer: 2 forward linears, 2 transposed linears and 2 weight gradients fold away, and their add.
    assert ops.count("linear") == _ops(g).count("linear") - 4 * layers
    assert ops.count("linear_wgrad") == _ops(g).count("linear_wgrad") - 2 * layers
    assert ops.count("add") == _ops(g).count("add") - layers
    params = init_params(SPEC, seed=1, dtype="float64")
    toks = np.random.default_rng(1).integers(0, SPEC.vocab_size, (2, 6))
    feeds = {"tokens": toks[:, :-1], "targets": toks[:, 1:]}
    a, b = _evaluate(g, params, feeds), compile(g).run(dict(params), feeds)
    for k in params:
        np.testing.assert_allclose(b[f"grad:{k}"], a[f"grad:{k}"], rtol=1e-10, atol=1e-13, err_msg=k)


def test_gate_that_is_a_graph_output_is_not_fused():
    g = build(SPEC, 1, 3)
    gate = next(v for n in g.nodes for v in n.outputs if v.name == "layers.0.gate")
    g.output("gate0", gate)
    fused = fuse(g)
    assert _ops(fused).count("swiglu") == SPEC.num_layers - 1
    verify(fused)


def test_autodiff_of_fused_graph_matches_unfused():
    # swiglu's backward rule recomputes the projections; gradients must equal those of the unfused graph.
    g = build(SPEC, 2, 5, dtype="float64")
    params = init_params(SPEC, seed=1, dtype="float64")
    toks = np.random.default_rng(1).integers(0, SPEC.vocab_size, (2, 6))
    feeds = {"tokens": toks[:, :-1], "targets": toks[:, 1:]}
    a = compile(autodiff(g, "loss")).run(dict(params), feeds)
    b = compile(autodiff(fuse(g), "loss")).run(dict(params), feeds)
    for k in params:
        # float64 round-off only (same math, different grouping).
        np.testing.assert_allclose(b[f"grad:{k}"], a[f"grad:{k}"], rtol=1e-10, atol=1e-13, err_msg=k)


def test_the_pipeline_is_one_list_in_order():
    assert [name for name, _ in PASSES] == ["verify", "fuse", "shard", "plan_memory", "schedule", "place", "cost"]


def test_training_program_runs_the_fused_mlp_both_ways():
    ops = [s.op for s in compile(autodiff(build(SPEC, 2, 5), "loss"), Target(backend="emu")).steps]
    assert ops.count("swiglu") == ops.count("swiglu_bwd") == SPEC.num_layers and "silu_mul_bwd" not in ops


def test_training_gate_read_elsewhere_stays_unfused():
    g = autodiff(build(SPEC, 1, 3), "loss")
    gate = next(v for n in g.nodes for v in n.outputs if v.name == "layers.0.gate")
    g.output("gate0", gate)
    ops = _ops(verify(fuse(g)))
    assert ops.count("swiglu") == ops.count("swiglu_bwd") == SPEC.num_layers - 1 and "silu_mul_bwd" in ops


@pytest.mark.parametrize("target", [Target(), Target(backend="mesh", mesh="n300")], ids=["host", "mesh n300"])
def test_node_meta_survives_every_pass(target):
    g = build(SPEC, 2, 8)
    for i, n in enumerate(g.nodes):
        n.meta["origin"] = (n.op, i)
    prog = compile(g, target)
    origins = [s.node.meta.get("origin") for s in prog.steps]
    # every step of a rewritten node keeps its meta: the fused swiglu the silu_mul's, sharded nodes their
    # source's; only collectives (inserted by shard) have none
    for s, origin in zip(prog.steps, origins):
        if s.impl == "collective":
            assert origin is None
        else:
            assert origin is not None and origin[0] == ("silu_mul" if s.op == "swiglu" else s.op), s
    assert any(s.op == "swiglu" for s in prog.steps)


def test_the_numpy_backend_keeps_the_gate_backward_unfused_and_kernel_targets_fuse_it():
    """On the numpy backend the fused backward would recompute x W1 and x W3 (1.42x the FLOPs of a nano-trickster
    training step, counted by the ops' own flops); where kernels run it (emu) the gate and its backward fuse."""
    from tilegraph.graph import load_spec, training_step

    from tilegraph.compiler import Target, compile

    step = training_step(load_spec("specs/nano-trickster.yaml"), 2, 32)
    ops = {b: [s.op for s in compile(step, Target(backend=b)).steps] for b in ("numpy", "emu")}
    assert ops["numpy"].count("swiglu_bwd") == 0 and ops["numpy"].count("silu_mul_bwd") == 6
    assert ops["numpy"].count("swiglu") == 0  # the forward keeps a and b for the unfused backward
    assert ops["emu"].count("swiglu_bwd") == 6 and ops["emu"].count("swiglu") == 6
