"""The ttnn Program backend's host side (runtime/ttnn_backend.py): the step -> call table of a training Program,
the mesh-mapper plans the shard pass implies, the ttnn mappers built from them without a device, and the one-line
error without a card. Running it needs a card (skipped here with that reason)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from tilegraph.graph import load_spec, training_step
from tilegraph.graph.passes.shard import Sharding
from tilegraph.ops.placement import P, R, Shard
from tilegraph.runtime.ttnn_backend import (
    DEVICE_CALLS,
    HOST_STEPS,
    Executor,
    MapperPlan,
    device_calls,
    distribute,
    mapper_plan,
    mapper_plans,
    mesh_mapper,
    permute_blocks,
)
from tilegraph.runtime.ttnn_program import card_present

from tilegraph.compiler import Target, compile
from tilegraph.errors import DeviceError

os.environ.setdefault("TT_METAL_MOCK_CLUSTER_DESC_PATH", str(Path(__file__).parent / "data" / "wormhole_N150.yaml"))
SPEC = Path(__file__).resolve().parent.parent / "specs" / "nano-trickster.yaml"


@pytest.fixture(scope="module")
def train_program():
    return compile(training_step(load_spec(SPEC), batch=2, seq=64), Target(backend="ttnn"))


def test_every_training_step_has_a_device_call(train_program):
    calls = device_calls(train_program)
    assert [c.step for c in calls] == [s.index for s in train_program.steps]
    kinds = {}
    for c in calls:
        kinds.setdefault(c.op, set()).add(c.kind)
    # Our kernels, forward and backward, through generic_op; the fused MLP in both directions.
    for op in ("rmsnorm", "attention", "swiglu", "rmsnorm_bwd", "attention_bwd", "swiglu_bwd"):
        assert kinds[op] == {"generic_op"}, op
    assert "silu_mul" not in kinds and "silu_mul_bwd" not in kinds
    assert kinds["linear"] == {"ttnn"} and kinds["embedding"] == {"ttnn"}
    assert kinds["adamw"] == {"host"} and kinds["cross_entropy"] == {"host"}
    for c in calls:
        if c.kind == "ttnn":
            assert c.what == DEVICE_CALLS[c.op]
        if c.kind == "host":
            assert c.what == HOST_STEPS[c.op]


def test_mapper_plans_follow_the_shard_pass_on_t3k():
    spec = load_spec(SPEC)
    program = compile(training_step(spec, batch=4, seq=64), Target(backend="ttnn", mesh="t3k"))
    plans = mapper_plans(program)
    by_name = {v.name: v for v in program.graph.inputs}
    for name, plan in plans.items():
        placements = by_name[name].sharding.placements
        assert len(plan.dims) == len(placements) == 2
        for d, p in zip(plan.dims, placements):
            assert (d is None) == (not isinstance(p, Shard))
    # Column-parallel w1 on the tensor-parallel axis, row-parallel w2, replicated norms.
    w1, w2, norm = plans["layers.0.w1"], plans["layers.0.w2"], plans["layers.0.mlp_norm"]
    assert 1 in w1.dims and 0 in w2.dims and norm.replicated
    # Collectives of the sharded Program run as ttnn CCLs with their cluster axis.
    ccl = [c for c in device_calls(program) if c.op in ("all_gather", "reduce_scatter", "all_reduce")]
    assert ccl and all(c.kind == "ttnn" and "cluster_axis" in c.what for c in ccl)


def test_mapper_plan_of_a_sharding_and_block_order():
    s = Sharding("t3k", (R, Shard(1, order=(0, 2, 1, 3))), (8, 16))
    plan = mapper_plan(s, "w")
    assert plan == MapperPlan((None, 1), (1, (0, 2, 1, 3)))
    a = np.arange(8 * 16).reshape(8, 16)
    got = permute_blocks(a, plan)
    assert np.array_equal(got[:, 4:8], a[:, 8:12]) and np.array_equal(got[:, 8:12], a[:, 4:8])
    with pytest.raises(DeviceError, match="partial over mesh axis 0"):
        mapper_plan(Sharding("t3k", (P, R), (8, 16)), "g")


def test_mesh_mappers_build_on_the_host():
    ttnn = pytest.importorskip("ttnn")
    for plan in (MapperPlan((None, 1)), MapperPlan((0, None)), MapperPlan((None, None))):
        assert mesh_mapper(ttnn, ttnn.MeshShape(2, 4), plan) is not None


@pytest.mark.parametrize("spec_name,mesh", [("nano-trickster", "n300"), ("nano-trickster", "t3k"),
                                            ("nano-trickster", "galaxy"), ("gqa-2-kv-heads", "t3k")])
def test_ttnn_mesh_mappers_cut_every_input_as_the_shard_pass_decided(spec_name, mesh):
    # The executor places inputs with ttnn's own mesh mapper (distribute); the virtual mesh cuts them by the
    # shard pass's Sharding (split_axis). Both must give every device the same piece, in row-major mesh order.
    ttnn = pytest.importorskip("ttnn")
    from tilegraph.graph import init_params
    from tilegraph.graph.spec import ModelSpec
    from tilegraph.runtime.mesh_backend import MeshExecutor

    spec = load_spec(SPEC) if spec_name == "nano-trickster" else ModelSpec(
        name=spec_name, vocab_size=256, hidden_size=256, num_layers=1, num_heads=8, num_kv_heads=2,
        mlp_hidden=256, max_seq_len=64)
    program = compile(training_step(spec, batch=8, seq=64), Target(backend="ttnn", mesh=mesh))
    virtual = MeshExecutor(program.graph)
    params = init_params(spec, 0)
    rng = np.random.default_rng(0)
    sharded = strided = 0
    for v in program.graph.inputs:
        if v.sharding is None or not v.sharding.global_shape:
            continue
        shape = v.sharding.global_shape
        arr = params[v.name] if v.name in params else (
            rng.integers(0, 256, shape) if v.dtype.startswith("int") else rng.standard_normal(shape))
        arr = np.asarray(arr, v.dtype)
        plan = mapper_plan(v.sharding, v.name)
        pieces = distribute(ttnn, virtual.shape, plan, arr)
        want = virtual.scatter(v, arr)
        assert len(pieces) == len(virtual.devices)
        for d, piece in zip(virtual.devices, pieces):
            assert piece.dtype == arr.dtype and np.array_equal(piece, want[d]), (v.name, d)
        sharded += not plan.replicated
        strided += plan.block_order is not None
    assert sharded >= 5  # weights, their AdamW moments and the token batch
    # 2 KV heads on 4 tensor-parallel devices cannot split, so query heads are dealt out strided (blocks permuted)
    assert (strided > 0) == (spec_name == "gqa-2-kv-heads")


@pytest.mark.skipif(card_present(), reason="checks the behaviour without a card")
def test_without_a_card_the_executor_stops_with_one_line(train_program):
    with pytest.raises(DeviceError) as e:
        Executor(train_program)
    msg = str(e.value)
    assert "\n" not in msg and "1x1 mesh" in msg and "/dev/tenstorrent" in msg
    t3k = compile(training_step(load_spec(SPEC), batch=4, seq=64), Target(backend="ttnn", mesh="t3k"))
    with pytest.raises(DeviceError, match=r"needs 8 Tenstorrent Wormhole chip\(s\) as a \dx\d mesh"):
        Executor(t3k)


@pytest.mark.skipif(not card_present(), reason="needs a Tenstorrent card (/dev/tenstorrent*)")
def test_training_step_on_a_card_matches_numpy():  # pragma: no cover - card only
    from tilegraph.graph import init_params
    from tilegraph.train.model import TrainingPrograms

    spec = load_spec(SPEC)
    x = np.random.default_rng(0).integers(0, 256, (2, 64))
    losses = []
    for target in (Target(backend="numpy"), Target(backend="ttnn")):
        programs = TrainingPrograms(spec, 2, 64, target=target)
        state = programs.init_state(init_params(spec, 0))
        losses.append(programs.train_step(state, x, np.roll(x, -1, 1), 1e-3, 1).loss)
    assert abs(losses[0] - losses[1]) < 0.05 * losses[0]
