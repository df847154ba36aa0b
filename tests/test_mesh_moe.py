"""Expert-parallel MoE on the virtual mesh: the sharded forward and training step equal the single-device result
(float64; tolerances as in test_mesh_equivalence.py), the expert layers carry explicit all_to_all dispatch and
combine nodes, and all_to_all's semantics and link cost."""

import math

import numpy as np
import pytest
from tilegraph.graph.autodiff import training_step
from tilegraph.graph.build import build, init_params
from tilegraph.graph.meshes import MESHES, get_mesh
from tilegraph.graph.passes.shard import shard
from tilegraph.ops import get_op
from tilegraph.runtime.mesh_backend import MeshExecutor

from tilegraph.compiler import compile

RTOL, ATOL = 1e-9, 1e-12
MOE = {"name": "moe-mini", "vocab_size": 64, "hidden_size": 32, "num_layers": 2, "num_heads": 8, "num_kv_heads": 4,
       "mlp_hidden": 24, "max_seq_len": 16, "tie_embeddings": False,
       "moe": {"experts": 8, "top_k": 2, "aux_loss_coef": 0.1}}
BATCH, SEQ = 4, 8


def _run(graph, mesh):
    rng = np.random.default_rng(1)
    feeds = {"tokens": rng.integers(0, 64, (BATCH, SEQ)).astype(np.int32),
             "targets": rng.integers(0, 64, (BATCH, SEQ)).astype(np.int32),
             "lr": np.float64(3e-3), "step": np.float64(1.0)}
    params = init_params(MOE, seed=0, dtype="float64")
    params = {k: v * 5 if v.ndim > 1 else v for k, v in params.items()}  # larger weights: routing varies by token
    prog = compile(graph)
    ref_state = prog.init_state(params)
    ref = prog.run(ref_state, feeds)
    sharded = shard(graph, mesh)
    state = prog.init_state(params)
    out = MeshExecutor(sharded).run(state, feeds)
    assert set(out) == set(ref)
    for key in ref:
        np.testing.assert_allclose(out[key], ref[key], rtol=RTOL, atol=ATOL, err_msg=f"output {key} on {mesh}")
    for key in ref_state:
        np.testing.assert_allclose(state[key], ref_state[key], rtol=RTOL, atol=ATOL, err_msg=f"state {key} on {mesh}")
    return sharded


@pytest.mark.parametrize("mesh", list(MESHES))
def test_moe_forward_equals_single_device(mesh):
    sharded = _run(build(MOE, BATCH, SEQ, dtype="float64"), mesh)
    tp = max(get_mesh(mesh).shape)
    a2a = [n for n in sharded.nodes if n.op == "all_to_all"]
    assert len(a2a) == (2 * 3 if tp > 1 else 0)  # per layer: dispatch h, dispatch gates, combine
    if tp > 1:
        local = [n for n in sharded.nodes if n.op == "moe_experts"]
        assert all(n.inputs[2].shape[0] == 8 // tp for n in local)  # each device holds its experts only
        # the link payload counts the rows a token occupies under balanced routing: P(a token picks >= 1 of the
        # device's 8/tp experts) = 1 - C(8 - 8/tp, 2) / C(8, 2); at tp 8 that is 1 - 21/28
        fill = 1 - math.comb(8 - 8 // tp, 2) / math.comb(8, 2)
        assert all(n.attrs["fill"] == pytest.approx(fill) for n in a2a)
        if tp == 8:
            assert fill == pytest.approx(0.25)


@pytest.mark.parametrize("mesh", ["n300", "t3k", "t3k-1x8", "galaxy"])
def test_moe_training_step_equals_single_device(mesh):
    """Loss (cross-entropy + load-balancing), grad norm, every gradient, updated weights and moments."""
    graph = training_step(MOE, BATCH, SEQ, dtype="float64", keep_grads=True)
    sharded = _run(graph, mesh)
    ops = [n.op for n in sharded.nodes]
    assert ops.count("moe_experts_bwd") == 2 and ops.count("all_to_all") == 2 * 3 + 2 * 5
    assert sharded.value("layers.0.expert_w1").shape[0] == 8 // max(get_mesh(mesh).shape)


def test_all_to_all_semantics_backward_and_cost():
    op = get_op("all_to_all")
    arrays = [np.arange(12.0).reshape(3, 4) + 100 * i for i in range(3)]
    out = op.collective(arrays, {"devices": 3})
    for j in range(3):
        for i in range(3):
            np.testing.assert_array_equal(out[j][i], arrays[i][j])
    again = op.collective(out, {"devices": 3})  # its own inverse: the backward rule is all_to_all again
    for a, b in zip(again, arrays):
        np.testing.assert_array_equal(a, b)
    m = get_mesh("t3k-1x8")
    nbytes = 8 * 2**20
    # ring: chunks 1..7 steps away cross 1,2,3,4,3,2,1 links -> 16/8 of the buffer, vs all_gather's 7/8
    t_a2a = m.ccl_seconds("all_to_all", nbytes, 1)
    t_ag = m.ccl_seconds("all_gather", nbytes, 1)
    fixed = 9.07e-6 + 5.82e-6 * 7
    assert (t_a2a - fixed) / (t_ag - fixed) == pytest.approx(16 / 7, rel=1e-9)


def test_dispatch_combine_round_trip():
    rng = np.random.default_rng(0)
    h = rng.standard_normal((2, 3, 5))
    gates, _ = get_op("moe_router").reference([rng.standard_normal((2, 3, 4))], {"top_k": 1, "aux_coef": 0.0})
    send_h, _, slots = get_op("moe_dispatch").reference([h, gates], {"devices": 2})
    # every token appears once per device group it is routed to, and combine adds the chunks back per token
    per_token = np.zeros(6)
    for j in range(2):
        per_token[slots[j][slots[j] >= 0]] += 1
    assert np.all(per_token == 1)  # top-1: one group each
    (y,) = get_op("moe_combine").reference([send_h, slots], {"token_shape": (2, 3)})
    np.testing.assert_array_equal(y, h)


def test_experts_that_do_not_divide_the_mesh_are_replicated_with_a_note():
    spec = {**MOE, "moe": {"experts": 6, "top_k": 2}}
    graph = build(spec, BATCH, SEQ, dtype="float64")
    sharded = shard(graph, "t3k-1x8")
    assert any("MoE experts replicated over TP 8" in n and "experts 6" in n for n in sharded.shard_notes)
    assert not any(n.op == "all_to_all" for n in sharded.nodes)
    params = init_params(spec, seed=0, dtype="float64")
    feeds = {"tokens": np.zeros((BATCH, SEQ), np.int32) + 3, "targets": np.ones((BATCH, SEQ), np.int32)}
    ref = compile(graph).run(dict(params), feeds)
    out = MeshExecutor(sharded).run(dict(params), feeds)
    np.testing.assert_allclose(out["loss"], ref["loss"], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("mode", ["prefill", "decode"])
def test_moe_inference_step_equals_single_device(mode):
    """MoE prefill (tokens split by sequence) and decode (one token per user: users split over the 8 devices of
    t3k-1x8, where no DP axis splits them) equal the single-device step: logits and every written KV cache."""
    from tilegraph.graph.inference import decode, prefill
    from tilegraph.graph.spec import load_spec

    users = 8
    graph = prefill(MOE, users, SEQ, "float64") if mode == "prefill" else decode(MOE, users, SEQ, "float64")
    params = {k: v * 5 if v.ndim > 1 else v for k, v in init_params(MOE, seed=0, dtype="float64").items()}
    rng = np.random.default_rng(3)
    prog = compile(graph)
    ref_state = prog.init_state(params)
    for k in ref_state:
        if k.startswith("kv."):
            ref_state[k][...] = rng.standard_normal(ref_state[k].shape)
    state = {k: v.copy() for k, v in ref_state.items()}
    feeds = {"tokens": rng.integers(0, load_spec(MOE).vocab_size, graph.inputs[0].shape).astype(np.int32)}
    ref = prog.run(ref_state, feeds)
    sharded = shard(graph, "t3k-1x8")
    out = MeshExecutor(sharded).run(state, feeds)
    np.testing.assert_allclose(out["logits"], ref["logits"], rtol=RTOL, atol=ATOL)
    for k in ref_state:
        np.testing.assert_allclose(state[k], ref_state[k], rtol=RTOL, atol=ATOL, err_msg=k)
    assert sum(n.op == "all_to_all" for n in sharded.nodes) == 2 * 3  # the experts are sharded, not replicated
