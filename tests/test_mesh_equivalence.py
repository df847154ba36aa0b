"""The sharded graphs, executed on the virtual mesh, equal the single-device numpy result on every named mesh.

Ground truth is the unsharded graph run by the numpy backend (runtime.compile(...).run). The sharded graph is run by
runtime/mesh_backend.py with one array per device and real collective semantics. Both in float64, so the only
differences are summation order (partial sums reduced by all_reduce / reduce_scatter, losses averaged over replicas):
rtol 1e-9 / atol 1e-12 is ~1e6 x float64 rounding on these O(1) sums yet far below any real sharding bug (a wrong
slice, a missing reduction or a double-counted replica changes values at the 1e-2..1 level).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tilegraph.graph import Graph
from tilegraph.graph.autodiff import training_step
from tilegraph.graph.build import build, init_params
from tilegraph.graph.meshes import MESHES
from tilegraph.graph.passes.shard import shard
from tilegraph.graph.spec import load_spec
from tilegraph.runtime.mesh_backend import MeshExecutor

from tilegraph.compiler import compile

RTOL, ATOL = 1e-9, 1e-12

NANO = "specs/nano-trickster.yaml"
# A reduced Llama-like spec: GQA with 16 query heads over 2 KV heads (so on TP 4 and 8 the KV heads are fewer
# than devices and get replicated), untied vocab-parallel lm_head.
GQA = {
    "name": "gqa-mini", "vocab_size": 64, "hidden_size": 128, "num_layers": 2, "num_heads": 16, "num_kv_heads": 2,
    "mlp_hidden": 256, "rope_base": 10000, "max_seq_len": 16, "tie_embeddings": False,
}  # fmt: skip
BATCH, SEQ = 4, 8  # batch divisible by every mesh's data-parallel degree (<= 4)


def _feeds(spec, seed=1):
    rng = np.random.default_rng(seed)
    v = load_spec(spec).vocab_size
    return {
        "tokens": rng.integers(0, v, (BATCH, SEQ)).astype(np.int32),
        "targets": rng.integers(0, v, (BATCH, SEQ)).astype(np.int32),
        "lr": np.float64(3e-3),
        "step": np.float64(1.0),
    }


def _compare(graph, spec, mesh, residual="all_reduce", layout="tp-dp"):
    params = init_params(spec, seed=0, dtype="float64")
    feeds = _feeds(spec)
    prog = compile(graph)
    ref_state = prog.init_state(params)
    ref = prog.run(ref_state, feeds)

    sharded = shard(graph, mesh, residual=residual, layout=layout)
    state = prog.init_state(params)
    out = MeshExecutor(sharded).run(state, feeds)

    assert set(out) == set(ref)
    for key in ref:
        np.testing.assert_allclose(out[key], ref[key], rtol=RTOL, atol=ATOL, err_msg=f"output {key} on {mesh}")
    for key in ref_state:
        np.testing.assert_allclose(state[key], ref_state[key], rtol=RTOL, atol=ATOL, err_msg=f"state {key} on {mesh}")
    # The step really changed the weights (so equal updates are not trivially equal).
    if graph.updates:
        assert any(not np.allclose(state[k], params[k]) for k in params)
    return sharded


@pytest.mark.parametrize("mesh", list(MESHES))
@pytest.mark.parametrize("spec", [NANO, GQA], ids=["nano-trickster", "gqa-mini"])
def test_forward_equals_single_device(spec, mesh):
    _compare(build(spec, BATCH, SEQ, dtype="float64"), spec, mesh)


@pytest.mark.parametrize("mesh", list(MESHES))
@pytest.mark.parametrize("spec", [NANO, GQA], ids=["nano-trickster", "gqa-mini"])
def test_training_step_equals_single_device(spec, mesh):
    """Loss, grad norm, every gradient, and every updated weight and AdamW moment."""
    graph = training_step(spec, BATCH, SEQ, dtype="float64", keep_grads=True)
    sharded = _compare(graph, spec, mesh)
    m = MESHES[mesh]
    ccl = [n for n in sharded.nodes if n.op in ("all_gather", "reduce_scatter", "all_reduce")]
    if m.num_devices == 1:
        assert not ccl
        return
    tp_axis, dp_axis = sharded.tp_axis, sharded.dp_axis
    if m.shape[tp_axis] > 1:  # the residual stream is reduced after row-parallel matmuls, forward and backward
        assert sum(n.op == "all_reduce" and n.attrs["cluster_axis"] == tp_axis for n in ccl) >= 4 * 2
    if m.shape[dp_axis] > 1:  # every weight gradient is all_reduced over the data-parallel axis
        n_params = len(sharded.params())
        assert sum(n.op == "all_reduce" and n.attrs["cluster_axis"] == dp_axis for n in ccl) >= n_params


@pytest.mark.parametrize("mesh", ["n300", "t3k", "galaxy"])
@pytest.mark.parametrize("spec", [NANO, GQA], ids=["nano-trickster", "gqa-mini"])
def test_reduce_scatter_residual_equals_single_device(spec, mesh):
    """Row-parallel outputs reduce_scatter onto a hidden-split residual; the forward norms are distributed RMSNorm
    in the statistics form: local sums of squares, an all_reduce of one value per row, local normalize."""
    graph = training_step(spec, BATCH, SEQ, dtype="float64", keep_grads=True)
    sharded = _compare(graph, spec, mesh, residual="reduce_scatter")
    assert any(n.op == "reduce_scatter" for n in sharded.nodes)
    applies = [n for n in sharded.nodes if n.op == "rmsnorm_apply"]
    assert applies  # a plain rmsnorm remains only where the residual is whole (the first, after the embedding)
    assert all(n.inputs[0].shape[-1] == n.inputs[0].sharding.global_shape[-1] for n in sharded.nodes
               if n.op == "rmsnorm")  # fmt: skip
    for n in applies:
        stats = n.inputs[1].producer
        assert stats.op == "all_reduce" and stats.outputs[0].shape[-1] == 1  # only the statistics cross a link
        assert n.inputs[0].shape[-1] * MESHES[mesh].shape[sharded.tp_axis] == n.inputs[0].sharding.global_shape[-1]


def test_compiled_sharded_program_runs_on_the_mesh_backend():
    """runtime.compile keeps the sharded graph's steps; the mesh backend's Executor runs the Program."""
    from tilegraph.runtime.mesh_backend import Executor

    graph = training_step(NANO, BATCH, SEQ, dtype="float64")
    single = compile(graph)
    ref_state = single.init_state(init_params(NANO, seed=0, dtype="float64"))
    state = {k: v.copy() for k, v in ref_state.items()}
    ref = single.run(ref_state, _feeds(NANO))
    out = Executor(compile(shard(graph, "t3k"))).run(state, _feeds(NANO))
    for key in ref:
        np.testing.assert_allclose(out[key], ref[key], rtol=RTOL, atol=ATOL)
    for key in ref_state:
        np.testing.assert_allclose(state[key], ref_state[key], rtol=RTOL, atol=ATOL)


@st.composite
def small_spec_and_mesh(draw):
    """Random GQA shapes: the head split is contiguous, strided (KV replicated) or a reported replication
    fallback, depending on heads / kv_heads / TP."""
    mesh = draw(st.sampled_from(["n300", "t3k", "t3k-1x8", "galaxy"]))
    tp = max(MESHES[mesh].shape)
    heads = tp * draw(st.sampled_from([1, 2, 4]))
    kv = draw(st.sampled_from([d for d in (1, 2, 4, 8) if heads % d == 0]))
    head_dim = draw(st.sampled_from([2, 4]))
    spec = {
        "name": "fuzz", "vocab_size": 8 * draw(st.integers(2, 5)), "hidden_size": heads * head_dim,
        "num_layers": 1, "num_heads": heads, "num_kv_heads": kv, "mlp_hidden": 8 * draw(st.integers(1, 3)),
        "max_seq_len": 8, "tie_embeddings": draw(st.booleans()),
    }  # fmt: skip
    return spec, mesh, draw(st.sampled_from(["all_reduce", "reduce_scatter"]))


@settings(deadline=None, max_examples=10, derandomize=True, database=None)
@given(small_spec_and_mesh())
def test_random_gqa_training_step_equals_single_device(case):
    spec, mesh, residual = case
    _compare(training_step(spec, BATCH, SEQ, dtype="float64", keep_grads=True), spec, mesh, residual)


@pytest.mark.parametrize("mesh", ["n300", "t3k", "galaxy"])
def test_fused_swiglu_mlp_equals_single_device(mesh):
    """The fused swiglu op (what the custom kernel computes) shards column-parallel like its two linears."""
    g = Graph("mlp")
    x = g.input("x", (BATCH, SEQ, 32), "float64")
    w1, w3 = g.param("layers.0.w1", (32, 64), "float64"), g.param("layers.0.w3", (32, 64), "float64")
    w2 = g.param("layers.0.w2", (64, 32), "float64")
    g.output("y", g.call("linear", g.call("swiglu", x, w1, w3), w2))
    sharded = shard(g, mesh)
    assert not sharded.shard_notes  # no replication fallback
    assert any(n.op == "swiglu" and n.outputs[0].shape[-1] == 64 // max(MESHES[mesh].shape) for n in sharded.nodes)
    rng = np.random.default_rng(0)
    state = {v.name: rng.standard_normal(v.shape) for v in g.params()}
    feeds = {"x": rng.standard_normal((BATCH, SEQ, 32))}
    ref = compile(g).run(dict(state), feeds)
    out = MeshExecutor(sharded).run(dict(state), feeds)
    np.testing.assert_allclose(out["y"], ref["y"], rtol=RTOL, atol=ATOL)


def _compare_inference(graph, spec, mesh, residual="all_reduce", layout="tp-dp", params=None):
    """Logits and every written KV cache of a prefill / decode step, sharded vs single device (caches start from
    random contents so that a wrong head or user split of the cache shows); `params` default: init_params."""
    params = init_params(spec, seed=0, dtype="float64") if params is None else params
    rng = np.random.default_rng(2)
    prog = compile(graph)
    ref_state = prog.init_state(params)
    for k in ref_state:
        if k.startswith("kv."):
            ref_state[k][...] = rng.standard_normal(ref_state[k].shape)
    state = {k: v.copy() for k, v in ref_state.items()}
    tokens = graph.inputs[0]
    feeds = {"tokens": rng.integers(0, load_spec(spec).vocab_size, tokens.shape).astype(np.int32)}
    ref = prog.run(ref_state, feeds)
    sharded = shard(graph, mesh, residual=residual, layout=layout)
    out = MeshExecutor(sharded).run(state, feeds)
    np.testing.assert_allclose(out["logits"], ref["logits"], rtol=RTOL, atol=ATOL, err_msg=f"logits on {mesh}")
    for k in ref_state:
        np.testing.assert_allclose(state[k], ref_state[k], rtol=RTOL, atol=ATOL, err_msg=f"state {k} on {mesh}")
    return sharded


@pytest.mark.parametrize("mesh", list(MESHES))
@pytest.mark.parametrize("spec", [NANO, GQA], ids=["nano-trickster", "gqa-mini"])
@pytest.mark.parametrize("mode", ["prefill", "decode"])
def test_inference_step_equals_single_device(mode, spec, mesh):
    """Prefill (KV caches written, last-token logits) and decode (one token over a cache of SEQ positions)."""
    from tilegraph.graph.inference import decode, prefill

    graph = prefill(spec, BATCH, SEQ, dtype="float64") if mode == "prefill" else decode(spec, BATCH, SEQ, "float64")
    _compare_inference(graph, spec, mesh)


@pytest.mark.parametrize("mesh", ["t3k", "galaxy"])
@pytest.mark.parametrize("spec", [NANO, GQA], ids=["nano-trickster", "gqa-mini"])
@pytest.mark.parametrize("mode", ["forward", "train", "prefill", "decode"])
def test_2d_tensor_parallel_equals_single_device(mode, spec, mesh):
    """2-D TP (tt-metal's Galaxy Llama): heads / MLP split on the long axis, the hidden dim of every block weight
    on the other; partial sums all_reduced on each cluster_axis; no data parallelism."""
    from tilegraph.graph.inference import decode, prefill

    if mode in ("prefill", "decode"):
        graph = prefill(spec, BATCH, SEQ, "float64") if mode == "prefill" else decode(spec, BATCH, SEQ, "float64")
        sharded = _compare_inference(graph, spec, mesh, layout="2d")
    elif mode == "forward":
        sharded = _compare(build(spec, BATCH, SEQ, dtype="float64"), spec, mesh, layout="2d")
    else:
        graph = training_step(spec, BATCH, SEQ, dtype="float64", keep_grads=True)
        sharded = _compare(graph, spec, mesh, layout="2d")
    m = MESHES[mesh]
    tp, hidden = m.shape[sharded.tp_axis], m.shape[sharded.dp_axis]
    w1 = next(v for v in sharded.inputs if v.name == "layers.0.w1")
    assert w1.shape == (w1.sharding.global_shape[0] // hidden, w1.sharding.global_shape[1] // tp)
    tokens = next(v for v in sharded.inputs if v.name == "tokens")
    assert tokens.shape == tokens.sharding.global_shape  # no data parallelism
    axes = {n.attrs["cluster_axis"] for n in sharded.nodes if n.op == "all_reduce"}
    assert axes == {0, 1}
