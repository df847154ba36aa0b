"""Dropout of the attention probabilities (ops/attention.py `dropout`, graph/build.py `_DropoutSites`): the reference
against a float64 loop written from the definition, the backward rule against finite differences for a fixed
(seed, salt, step), one mask shared by the forward and the backward, no trace of it in graphs without dropout,
the device kernels refusing it (so the place pass falls back), and a tiny model training with it."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_eval import backward_rule_grads, central_difference, check_backward_against_fd
from tilegraph.graph import build, init_params, load_spec, training_step
from tilegraph.graph.ir import format_node
from tilegraph.ops import get_op
from tilegraph.ops.attention import alibi_slopes
from tilegraph.ops.dropout import keep_mask

from tilegraph.compiler import compile

SPECS = Path(__file__).resolve().parent.parent / "specs"
SETTINGS = settings(deadline=None, max_examples=12, derandomize=True, database=None)


def _qkv(rng, b, s, heads, kv_heads, d):
    return [rng.standard_normal((b, s, n * d)) for n in (heads, kv_heads, kv_heads)]


def _attrs(heads, kv_heads, p=0.3, seed=7, salt=11, **kw):
    return {"heads": heads, "kv_heads": kv_heads, "causal": True, "scale": None, "dropout": p, "seed": seed,
            "salt": salt, **kw}


# -- backward rule vs finite differences (float64; the mask is a function of (seed, salt, step): fixed here) --------
@SETTINGS
@given(seed=st.integers(0, 2**31 - 1), b=st.sampled_from([1, 2]), s=st.integers(1, 9), kv_heads=st.integers(1, 2),
       group=st.integers(1, 3), p=st.sampled_from([0.1, 0.5, 0.8]), step=st.integers(0, 10**6),
       variant=st.sampled_from(["causal", "full", "window", "alibi"]))  # fmt: skip
def test_attention_dropout_backward_matches_finite_differences(seed, b, s, kv_heads, group, p, step, variant):
    rng = np.random.default_rng(seed)
    heads = kv_heads * group
    extra = {"full": {"causal": False}, "window": {"window": 3}, "alibi": {"alibi": True}}.get(variant, {})
    attrs = _attrs(heads, kv_heads, p=p, seed=seed, **extra)
    inputs = [*_qkv(rng, b, s, heads, kv_heads, 2), np.float64(step)]
    check_backward_against_fd("attention", inputs, attrs, rng, wrt=[0, 1, 2], cotangent_for=[True, False])


def test_a_backward_with_another_mask_misses_the_gradient():
    """The finite-difference check can fail: a backward that draws its mask at another step (a mask not shared
    with the forward) is off by O(1)."""
    rng = np.random.default_rng(3)
    q, k, v = _qkv(rng, 1, 6, 2, 2, 3)
    attrs = _attrs(2, 2, p=0.5)
    op = get_op("attention")
    ct = rng.standard_normal(q.shape)

    def loss():
        return float(np.sum(op.reference([q, k, v, np.float64(4)], attrs)[0] * ct))

    numeric = central_difference(loss, q)
    same = backward_rule_grads("attention", [q, k, v, np.float64(4)], attrs, [ct, None])[0]
    other = backward_rule_grads("attention", [q, k, v, np.float64(5)], attrs, [ct, None])[0]
    np.testing.assert_allclose(same, numeric, rtol=1e-6, atol=1e-8)
    assert np.abs(other - numeric).max() > 1e-2


# -- the reference against the definition, written as loops in float64 ---------------------------------------------
def test_attention_dropout_reference_by_loops():
    """o[b, i, head h] = sum_j keep[b,h,i,j] / (1-p) * softmax_j(q_i.k_j * scale - m_h (i-j)) v_j over j <= i; the
    keep bit of (b, h, i, j) is element ((b*heads + h)*S + i)*S + j of ops/dropout.py's draw; lse undropped."""
    rng = np.random.default_rng(0)
    b, s, heads, kv_heads, d, p, step = 2, 6, 4, 2, 3, 0.4, 123
    q, k, v = _qkv(rng, b, s, heads, kv_heads, d)
    for alibi in (False, True):
        attrs = _attrs(heads, kv_heads, p=p, seed=9, salt=2, alibi=alibi)
        o, lse = get_op("attention").reference([q, k, v, np.float64(step)], attrs)
        flat_keep = keep_mask((b * heads * s * s,), p, 9, 2, step)
        slopes = alibi_slopes(heads)
        for bi in range(b):
            for h in range(heads):
                kh = h // (heads // kv_heads)
                qh, kk, vv = q[bi, :, h * d:(h + 1) * d], k[bi, :, kh * d:(kh + 1) * d], v[bi, :, kh * d:(kh + 1) * d]
                for i in range(s):
                    w = [qh[i] @ kk[j] / math.sqrt(d) - (slopes[h] * (i - j) if alibi else 0.0) for j in range(i + 1)]
                    w = np.array(w)
                    e = np.exp(w - w.max())
                    prob = e / e.sum()
                    out = np.zeros(d)
                    for j in range(i + 1):
                        if flat_keep[((bi * heads + h) * s + i) * s + j]:
                            out += prob[j] / (1 - p) * vv[j]
                    np.testing.assert_allclose(o[bi, i, h * d:(h + 1) * d], out, rtol=1e-12, atol=1e-14)
                    assert lse[bi, h, i] == pytest.approx(w.max() + math.log(e.sum()), rel=1e-13)


def test_mask_rate_and_determinism():
    """About p of the visible probabilities are dropped; the same (seed, salt, step) gives the same output, and
    another step, salt or seed another one."""
    rng = np.random.default_rng(1)
    q, k, v = _qkv(rng, 2, 64, 2, 2, 4)
    op = get_op("attention")
    base = op.reference([q, k, v, np.float64(3)], _attrs(2, 2, p=0.25, causal=False))[0]
    np.testing.assert_array_equal(op.reference([q, k, v, np.float64(3)], _attrs(2, 2, p=0.25, causal=False))[0], base)
    for change in ({"step": 4}, {"salt": 12}, {"seed": 8}):
        step = np.float64(change.pop("step", 3))
        assert not np.allclose(op.reference([q, k, v, step], _attrs(2, 2, p=0.25, causal=False, **change))[0], base)
    keep = keep_mask((2, 2, 64, 64), 0.25, 7, 11, 3)
    assert abs(1 - keep.mean() - 0.25) < 0.02  # 16384 draws: the standard error of the rate is 0.0034


def test_forward_and_backward_share_the_mask():
    """dV = (M * P / (1-p))^T dO needs the forward's M: with a one-hot dO on query row i, dV's row j is nonzero
    exactly where the forward kept (i, j) (P > 0 on the visible keys)."""
    rng = np.random.default_rng(5)
    s, step = 8, 77
    q, k, v = _qkv(rng, 1, s, 1, 1, 2)
    attrs = _attrs(1, 1, p=0.5)
    o, lse = get_op("attention").reference([q, k, v, np.float64(step)], attrs)
    keep = keep_mask((1, 1, s, s), 0.5, 7, 11, step)[0, 0]
    for i in range(s):
        do = np.zeros_like(o)
        do[0, i] = 1.0
        _, _, dv = get_op("attention_bwd").reference([q, k, v, o, lse, do, np.float64(step)], attrs)
        nonzero = np.abs(dv[0]).sum(axis=1) > 0
        np.testing.assert_array_equal(nonzero, keep[i] & (np.arange(s) <= i))
        # and the forward's row i is exactly the kept keys' contribution: v rows dropped do not reach o[i]
        assert np.any(keep[i, : i + 1]) == bool(np.any(o[0, i] != 0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["causal", "full", "window", "long"])
def test_cpu_kernels_draw_the_references_mask(case, dtype):
    """numpy_into (the C++ CPU kernels, what training runs) with dropout equals the float64 reference: within
    float32 rounding, and to 1e-10 in float64, where a single element kept by one and dropped by the other would
    be off by O(1/S)."""
    rng = np.random.default_rng(7)
    s = 70 if case == "long" else 19  # 70: several 32-row blocks and a key count that is no whole vector
    q, k, v = _qkv(rng, 2, s, 4, 2, 6)
    step = np.float64(9)
    extra = {"full": {"causal": False}, "window": {"window": 5}}.get(case, {})
    attrs = {**get_op("attention").attrs, **_attrs(4, 2, p=0.2, **extra)}
    fwd = get_op("attention").reference([q, k, v, step], attrs)
    do = rng.standard_normal(q.shape)
    tol = {np.float32: (2e-4, 2e-5), np.float64: (1e-10, 1e-12)}[dtype]
    for op, inputs in (("attention", [q, k, v, step]), ("attention_bwd", [q, k, v, *fwd, do, step])):
        want = get_op(op).reference(inputs, attrs)
        cast = [a.astype(dtype) for a in inputs]
        got = [np.full(w.shape, np.nan, dtype) for w in want]
        get_op(op).numpy_into(cast, got, attrs)
        for w, g_ in zip(want, got):
            np.testing.assert_allclose(g_, w, rtol=tol[0], atol=tol[1] * max(1.0, float(np.abs(w).max())), err_msg=op)


@settings(deadline=None, max_examples=200, derandomize=True, database=None)
@given(p=st.floats(0, 1, exclude_max=True), u=st.integers(0, 2**53 - 1))
def test_integer_threshold_is_the_float_comparison(p, u):
    """The kernels keep u >= ceil(p * 2^53); ops/dropout.py keeps u * 2^-53 >= p: the same set."""
    from tilegraph.ops.dropout import keep_threshold

    assert (u >= keep_threshold(p)) == (u * 2.0**-53 >= p)
    t = keep_threshold(p)
    if 0 < t <= 2**53:  # the boundary itself: t is kept, t - 1 is not
        assert t * 2.0**-53 >= p > (t - 1) * 2.0**-53


# -- graphs ----------------------------------------------------------------------------------------------------------
TINY = {"name": "t", "vocab_size": 23, "hidden_size": 16, "num_layers": 2, "num_heads": 4, "num_kv_heads": 2,
        "mlp_hidden": 24, "max_seq_len": 8}  # fmt: skip


def _text(graph) -> str:
    return "\n".join(format_node(n) for n in graph.nodes) + repr([v.name for v in graph.inputs])


def test_p0_graph_is_the_graph_without_dropout():
    without = load_spec(TINY)
    zero = load_spec({**TINY, "dropout": 0.0})
    assert _text(build(zero, 2, 8, training=True)) == _text(build(without, 2, 8, training=True))
    assert _text(training_step(zero, 2, 8)) == _text(training_step(without, 2, 8))
    step = training_step(zero, 2, 8)
    assert all(len(n.inputs) == {"attention": 3, "attention_bwd": 6}[n.op]
               for n in step.nodes if n.op.startswith("attention"))  # fmt: skip


def test_training_graph_has_attention_dropout_on_one_step_and_one_salt_per_layer():
    spec = load_spec({**TINY, "dropout": 0.1})
    assert not any(n.attrs.get("dropout") for n in build(spec, 2, 8).nodes if n.op == "attention")  # eval graph
    step = training_step(spec, 2, 8, dropout_seed=4)
    fwd = [n for n in step.nodes if n.op == "attention"]
    bwd = [n for n in step.nodes if n.op == "attention_bwd"]
    step_input = next(v for v in step.inputs if v.name == "step")
    assert len(fwd) == len(bwd) == spec.num_layers
    assert all(n.inputs[-1] is step_input and n.attrs["dropout"] == 0.1 and n.attrs["seed"] == 4 for n in fwd + bwd)
    salts = {n.attrs["salt"] for n in fwd}
    assert len(salts) == spec.num_layers and salts == {n.attrs["salt"] for n in bwd}
    residual = {n.attrs["salt"] for n in step.nodes if n.op == "dropout"}
    assert not salts & residual  # every site its own mask


def test_kernels_refuse_attention_dropout_and_place_falls_back():
    from tilegraph.graph.passes.place import device_impl, kernel_refusal

    from tilegraph.compiler import Target

    spec = load_spec(SPECS / "nano-trickster.yaml").to_dict()
    spec.update({"name": "dropped", "num_layers": 1, "dropout": 0.1})
    step = training_step(load_spec(spec), 1, 64)
    for node in step.nodes:
        if node.op in ("attention", "attention_bwd"):
            assert "dropout=0.1" in kernel_refusal(node) and "no dropout mask" in kernel_refusal(node)
            assert device_impl(node).startswith("ttnn:composite"), node.op
    program = compile(step, Target(backend="emu"))
    assert {s.impl for s in program.steps if s.op.startswith("attention")} == {"numpy"}
    spec.update({"dropout": 0.0})  # without dropout the kernels run it
    program = compile(training_step(load_spec(spec), 1, 64), Target(backend="emu"))
    assert {s.impl for s in program.steps if s.op == "attention"} == {"kernel:attention"}


def test_flops_count_the_dropout_as_a_small_elementwise_term():
    spec = load_spec({**TINY, "dropout": 0.1})
    on = {n.op: get_op(n.op).flops(n) for n in training_step(spec, 2, 8).nodes if n.op.startswith("attention")}
    off = {n.op: get_op(n.op).flops(n) for n in training_step(load_spec(TINY), 2, 8).nodes
           if n.op.startswith("attention")}  # fmt: skip
    b, heads, pairs = 2, 4, 8 * 8 // 2
    assert on["attention"] - off["attention"] == 3 * b * heads * pairs
    assert on["attention_bwd"] - off["attention_bwd"] == 6 * b * heads * pairs


def test_a_tiny_spec_trains_with_dropout_and_its_loss_follows_the_seed(tmp_path):
    """gpt2-tiny with dropout 0.1 trains (the loop, a few steps, reproducible); one step from the same parameters
    and batch gives the same loss for the same dropout seed and step, and another loss for another seed or step
    (other masks)."""
    import yaml
    from tilegraph.train import loop
    from tilegraph.train.config import TrainConfig
    from tilegraph.train.model import TrainingPrograms

    spec = {**yaml.safe_load((SPECS / "gpt2-tiny.yaml").read_text()), "dropout": 0.1, "num_layers": 2}

    def run_losses(name):
        cfg = TrainConfig(steps=4, batch=2, seq=32, lr=3e-3, min_lr=3e-4, warmup=1, eval_interval=4, eval_batches=1)
        run = loop.start_run(spec, cfg, tmp_path / name)
        loop.train(run)
        return [loss for _, loss in run.history.train]

    first = run_losses("a")
    assert len(first) == 4 and all(np.isfinite(first)) and run_losses("again") == first

    tokens = np.random.default_rng(0).integers(0, 256, (2, 33)).astype(np.int32)
    params = init_params(spec, seed=0)

    def step_loss(dropout_seed, step):
        programs = TrainingPrograms(load_spec(spec), 2, 32, dropout_seed=dropout_seed)
        state = programs.init_state({k: v.copy() for k, v in params.items()})
        return programs.train_step(state, tokens[:, :-1], tokens[:, 1:], 1e-3, step).loss

    base = step_loss(1, 1)
    assert step_loss(1, 1) == base
    assert step_loss(2, 1) != base and step_loss(1, 2) != base


@pytest.mark.parametrize("mesh", ["n300", "t3k", "galaxy"])
def test_sharded_training_step_with_attention_dropout_equals_one_device(mesh):
    """Attention with dropout runs whole over tensor parallelism (its mask is drawn by global index), and the
    replicated logits after the dropout sites meet the batch-split targets of data parallelism by a local slice: the
    sharded step equals the single-device one (float64; only summation order differs)."""
    from tilegraph.graph.passes.shard import shard
    from tilegraph.runtime.mesh_backend import MeshExecutor

    spec = load_spec({**TINY, "hidden_size": 32, "num_heads": 8, "num_kv_heads": 2, "dropout": 0.2})
    graph = training_step(spec, 4, 8, dtype="float64", keep_grads=True, dropout_seed=5)
    params = init_params(spec, seed=0, dtype="float64")
    rng = np.random.default_rng(1)
    feeds = {"tokens": rng.integers(0, 23, (4, 8)).astype(np.int32), "targets": rng.integers(0, 23, (4, 8)).astype(
        np.int32), "lr": np.float64(3e-3), "step": np.float64(2.0)}
    prog = compile(graph)
    ref = prog.run(prog.init_state(params), feeds)
    sharded = shard(graph, mesh)
    assert any("attention dropout" in note for note in sharded.shard_notes)
    out = MeshExecutor(sharded).run(prog.init_state(params), feeds)
    for key in ref:
        np.testing.assert_allclose(out[key], ref[key], rtol=1e-9, atol=1e-12, err_msg=key)


def test_describe_names_the_dropout_sites(capsys, tmp_path):
    from tilegraph.cli import main

    path = tmp_path / "d.yaml"
    path.write_text("".join(f"{k}: {v}\n" for k, v in {**TINY, "dropout": 0.1}.items()))
    assert main(["describe", str(path)]) == 0
    assert "dropout 0.1 (embedding, residual, attention probabilities)" in capsys.readouterr().out


def test_resume_with_attention_dropout_equals_uninterrupted(tmp_path):
    """The masks are a function of (seed, step), and the checkpoint stores the step: a run stopped at step 3 and
    resumed draws the masks the uninterrupted run drew (bit-identical losses and state, as tests/test_train_loop.py
    checks without dropout)."""
    import signal
    from dataclasses import replace

    from tilegraph.train import loop

    spec = {**TINY, "vocab_size": 256, "max_seq_len": 32, "dropout": 0.2}
    cfg = loop.TrainConfig(steps=6, batch=2, seq=16, warmup=1, eval_interval=3, eval_batches=1, seed=5, keep=2)
    full = loop.start_run(spec, cfg, tmp_path / "full")
    loop.train(full)

    def stop_at_3(run):
        if run.step == 3:
            signal.raise_signal(signal.SIGINT)  # the loop's Ctrl-C path: checkpoint and stop

    first = loop.start_run(spec, cfg, tmp_path / "split")
    assert loop.train(first, on_step=stop_at_3).steps_done == 3
    resumed = loop.resume_run(tmp_path / "split")
    loop.train(resumed)
    np.testing.assert_array_equal(np.array(resumed.history.train), np.array(full.history.train))
    for name, value in full.state.items():
        np.testing.assert_array_equal(resumed.state[name], value, err_msg=name)
    # and the masks matter: without dropout the same run gives other losses
    plain = loop.start_run({**spec, "dropout": 0.0}, replace(cfg, steps=3), tmp_path / "plain")
    loop.train(plain)
    assert np.array(plain.history.train)[:, 1].tolist() != np.array(full.history.train)[:3, 1].tolist()
