"""Passes verify/schedule and the Program: ordering, dead-code removal, buffer reuse, table and JSON, input checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tilegraph.graph import Graph, build, init_params, load_spec, training_step
from tilegraph.graph.passes.schedule import schedule
from tilegraph.graph.passes.verify import verify
from tilegraph.ops import get_op

from tilegraph.compiler import compile
from tilegraph.errors import DeviceError, ShapeError

SPEC = load_spec(Path(__file__).resolve().parent.parent / "specs" / "tiny-test.yaml")


def _small_graph():
    g = Graph("g")
    x = g.input("x", (2, 3))
    w = g.param("w", (3, 4))
    y = g.call("linear", x, w, name="y")
    dead = g.call("add", y, y, name="dead")
    z = g.call("add", y, y, name="z")
    g.output("z", z)
    return g, x, w, y, dead, z


def test_schedule_orders_topologically_and_drops_dead_nodes():
    g, *_ = _small_graph()
    g.nodes.reverse()  # out of order on purpose
    with pytest.raises(ShapeError, match="before it is defined"):
        verify(g)
    s = schedule(g)
    assert [n.outputs[0].name for n in s.nodes] == ["y", "z"]
    assert len(g.nodes) == 3  # the input graph is unchanged
    assert verify(s) is s


def test_verify_catches_type_mismatch_and_bad_updates():
    g, _x, _w, y, *_ = _small_graph()
    y.type = type(y.type)((2, 5), "float32")  # corrupt the recorded type
    with pytest.raises(ShapeError, match="infers"):
        verify(g)
    g2, x2, _w2, y2, *_ = _small_graph()
    g2.updates[x2] = y2
    with pytest.raises(ShapeError, match="must be a param or state"):
        verify(g2)
    g3, _x3, w3, y3, *_ = _small_graph()
    g3.updates[w3] = y3
    with pytest.raises(ShapeError, match="changes type"):
        verify(g3)


def test_program_runs_forward_against_numpy():
    g, *_ = _small_graph()
    prog = compile(g)
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3)).astype(np.float32), rng.standard_normal((3, 4)).astype(np.float32)
    out = prog.run({"w": w}, {"x": x})
    # float32 matmul of K=3: a few ulps.
    np.testing.assert_allclose(out["z"], 2 * (x @ w), rtol=1e-6)
    with pytest.raises(ShapeError, match="needs input 'x'"):
        prog.run({"w": w}, {})
    with pytest.raises(ShapeError, match="shape"):
        prog.run({"w": w}, {"x": x[:1]})
    with pytest.raises(ShapeError, match="float32"):
        prog.run({"w": w.astype(np.float64)}, {"x": x})
    with pytest.raises(DeviceError, match="unknown backend"):
        prog.run({"w": w}, {"x": x}, backend="abacus")


def test_buffers_are_shared_between_non_overlapping_values():
    prog = compile(training_step(SPEC, 2, 8))
    pinned = set(prog.outputs.values()) | set(prog.updates.values())
    transient = [n for s in prog.steps for n in s.outputs if n not in pinned]
    assert len({prog.value_buffer[n] for n in transient}) < 0.6 * len(transient)
    # No step writes a buffer that one of its own inputs lives in, and no two live values share a buffer.
    live: dict[int, str] = {}
    last_read = {}
    for s in prog.steps:
        for name in s.inputs:
            last_read[name] = s.index
    for s in prog.steps:
        for name in s.inputs:
            if name in prog.value_buffer:
                assert live[prog.value_buffer[name]] == name, f"{name} was overwritten before step {s.index}"
        for name in s.outputs:
            if name not in prog.aliases:  # (in-place updates live in the state arrays, not in buffers)
                live[prog.value_buffer[name]] = name
    for name in pinned - set(prog.aliases):
        owners = [v for v, b in prog.value_buffer.items() if b == prog.value_buffer[name]]
        assert owners[-1] == name  # it may reuse an earlier value's buffer, but nothing later overwrites it


def test_table_and_json():
    prog = compile(build(SPEC, 1, 4))
    text = str(prog)
    assert text.splitlines()[0].startswith(f"program {SPEC.name}.forward: {len(prog)} steps")
    rows = text.splitlines()[2:]  # after the header and the column titles: one row per step
    assert len(rows) == len(prog.steps)
    for row, step in zip(rows, prog.steps):
        cells = row.split()
        assert cells[0] == str(step.index) and cells[1] == step.op and step.impl in cells
    impl = {s.op: s.impl for s in prog.steps}
    # attention and the fused SwiGLU gate (fuse runs in every compile of a forward graph) have fast paths
    assert impl["attention"] == "numpy" and impl["swiglu"] == "numpy" and "silu_mul" not in impl
    data = json.loads(prog.to_json())
    assert [s["op"] for s in data["steps"]] == [s.op for s in prog.steps]
    assert data["outputs"] == {"logits": "logits", "loss": "loss"}
    assert {"name": "tokens", "shape": [1, 4], "dtype": "int32", "role": "input"} in data["inputs"]


def test_init_state_and_in_place_updates():
    prog = compile(training_step(SPEC, 2, 8))
    params = init_params(SPEC, seed=1)
    state = prog.init_state(params)
    assert set(state) == set(params) | {f"m:{k}" for k in params} | {f"v:{k}" for k in params}
    assert all(not np.any(state[f"m:{k}"]) for k in params)
    wq = state["layers.0.wq"]
    rng = np.random.default_rng(0)
    toks = rng.integers(0, SPEC.vocab_size, (2, 9))
    out = prog.run(state, {"tokens": toks[:, :-1], "targets": toks[:, 1:], "lr": 1e-2, "step": 1})
    assert set(out) == {"loss", "grad_norm"}
    assert state["layers.0.wq"] is wq and not np.array_equal(wq, params["layers.0.wq"])  # updated in place
    assert np.array_equal(params["layers.0.wq"], init_params(SPEC, seed=1)["layers.0.wq"])  # caller's copy intact
    with pytest.raises(ShapeError, match="needs param 'final_norm'"):
        prog.init_state({k: v for k, v in params.items() if k != "final_norm"})


def test_in_place_updates_give_the_same_step(monkeypatch):
    # With adamw declared alias-safe, its outputs are the state arrays themselves (no buffers, no copies); the
    # step must compute exactly what the copying program computes.
    params = init_params(SPEC, seed=4)
    rng = np.random.default_rng(1)
    toks = rng.integers(0, SPEC.vocab_size, (2, 9))
    feeds = {"tokens": toks[:, :-1], "targets": toks[:, 1:], "lr": 1e-2}
    results = []
    for alias in (False, True):
        monkeypatch.setattr(get_op("adamw"), "outputs_may_alias_inputs", alias, raising=False)
        prog = compile(training_step(SPEC, 2, 8))
        assert bool(prog.aliases) == alias and len(prog.aliases) in (0, 3 * len(params))
        state = prog.init_state(params)
        before = {k: v for k, v in state.items()}
        outs = [prog.run(state, {**feeds, "step": float(i)}) for i in (1, 2)]
        assert all(state[k] is before[k] for k in state)
        results.append((outs, state))
    (o1, s1), (o2, s2) = results
    assert [float(o["loss"]) for o in o1] == [float(o["loss"]) for o in o2]
    for k in s1:
        np.testing.assert_array_equal(s1[k], s2[k], err_msg=k)


def test_mesh_backend_runs_a_sharded_program_like_numpy():
    from tilegraph.graph.passes.shard import shard

    g = training_step(SPEC, 2, 8)
    sharded, plain = compile(shard(g, "n300")), compile(g)
    params = init_params(SPEC, seed=0)
    s_mesh, s_np = sharded.init_state(params), plain.init_state(params)  # global shapes for both
    toks = np.random.default_rng(0).integers(0, SPEC.vocab_size, (2, 9))
    feeds = {"tokens": toks[:, :-1], "targets": toks[:, 1:], "lr": 1e-2, "step": 1.0}
    a, b = sharded.run(s_mesh, feeds, backend="mesh"), plain.run(s_np, feeds)
    # float32 with a different summation order per device: ~1e-7 relative per op.
    assert float(a["loss"]) == pytest.approx(float(b["loss"]), rel=1e-5)
    assert float(a["grad_norm"]) == pytest.approx(float(b["grad_norm"]), rel=1e-4)
    for k in s_np:
        # One AdamW step moves weights by ~lr = 1e-2; rounding differences in the gradient change that by far
        # less than 1e-4 except where a gradient is ~0, which these random tokens do not produce.
        np.testing.assert_allclose(s_mesh[k], s_np[k], atol=1e-4, err_msg=k)


def test_profile_lists_every_op_kind_and_updates_like_run():
    prog = compile(training_step(SPEC, 2, 8))
    params = init_params(SPEC, seed=1)
    toks = np.random.default_rng(0).integers(0, SPEC.vocab_size, (2, 9))
    feeds = {"tokens": toks[:, :-1], "targets": toks[:, 1:], "lr": 1e-2, "step": 1.0}
    s_run, s_prof = prog.init_state(params), prog.init_state(params)
    prog.run(s_run, feeds)
    table = prog.profile(s_prof, feeds, repeats=1)
    assert all(any(line.startswith(op + " ") for line in table.splitlines()) for op in {s.op for s in prog.steps})
    for k in s_run:
        np.testing.assert_array_equal(s_prof[k], s_run[k], err_msg=k)
