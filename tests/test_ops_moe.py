"""Mixture of experts: the router (top-k renormalised gates, Switch load-balancing loss) and the routed SwiGLU
experts against independent formulas, their backward rules against finite differences (float64), and a whole MoE
model's gradients against finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_eval import check_backward_against_fd
from tilegraph.graph import autodiff, build, init_params, load_spec, param_shapes
from tilegraph.graph.ir import Graph
from tilegraph.ops import get_op
from tilegraph.ops.moe import experts_dense_reference

from tilegraph.compiler import compile
from tilegraph.errors import ShapeError

SETTINGS = settings(deadline=None, max_examples=12, derandomize=True, database=None)
seeds = st.integers(0, 2**31 - 1)


def _router(logits, k, coef):
    return get_op("moe_router").reference([logits], {"top_k": k, "aux_coef": coef})


@SETTINGS
@given(seed=seeds, tokens=st.integers(1, 9), experts=st.integers(1, 6), data=st.data())
def test_router_gates_and_aux_match_a_per_token_loop(seed, tokens, experts, data):
    k = data.draw(st.integers(1, experts))
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((1, tokens, experts))
    gates, aux = _router(logits, k, 0.01)
    probs = np.zeros((tokens, experts))
    counts = np.zeros(experts)
    for t in range(tokens):
        row = logits[0, t]
        p = np.exp(row) / np.exp(row).sum()
        probs[t] = p
        chosen = sorted(range(experts), key=lambda e: -row[e])[:k]
        counts[chosen] += 1
        want = np.zeros(experts)
        want[chosen] = p[chosen] / p[chosen].sum()
        np.testing.assert_allclose(gates[0, t], want, rtol=1e-12, atol=1e-15)
    # Switch: coef * E * sum_e (fraction of token-slots to e) * (mean router probability of e)
    want_aux = 0.01 * experts * np.sum(counts / (tokens * k) * probs.mean(axis=0))
    assert float(aux) == pytest.approx(want_aux, rel=1e-12)
    assert np.count_nonzero(gates) == tokens * k


def test_aux_loss_is_coef_when_balanced_and_larger_when_collapsed():
    balanced = np.tile(np.eye(4) * 5.0, (1, 2, 1))  # 8 tokens, two per expert, confident
    _, aux = _router(balanced, 1, 0.01)
    assert float(aux) == pytest.approx(0.01, rel=0.05)
    collapsed = np.zeros((1, 8, 4))
    collapsed[..., 0] = 5.0
    _, aux_c = _router(collapsed, 1, 0.01)
    assert float(aux_c) > 3.5 * 0.01


@SETTINGS
@given(seed=seeds, tokens=st.integers(1, 7), experts=st.integers(2, 5), data=st.data())
def test_router_backward_matches_finite_differences(seed, tokens, experts, data):
    k = data.draw(st.integers(1, experts))
    rng = np.random.default_rng(seed)
    logits = 2.0 * rng.standard_normal((2, tokens, experts))
    check_backward_against_fd("moe_router", [logits], {"top_k": k, "aux_coef": 0.3}, rng, wrt=[0])


def _expert_inputs(rng, b, s, h, f, e, k):
    x = rng.standard_normal((b, s, h))
    gates, _ = _router(rng.standard_normal((b, s, e)), k, 0.0)
    ws = [rng.standard_normal(shape) / np.sqrt(shape[1]) for shape in ((e, h, f), (e, h, f), (e, f, h))]
    return x, gates, ws


@SETTINGS
@given(seed=seeds, b=st.integers(1, 2), s=st.integers(1, 6), h=st.integers(1, 6), f=st.integers(1, 5),
       e=st.integers(1, 4), data=st.data())
def test_routed_experts_equal_the_dense_sum(seed, b, s, h, f, e, data):
    k = data.draw(st.integers(1, e))
    x, gates, ws = _expert_inputs(np.random.default_rng(seed), b, s, h, f, e, k)
    for dtype in (np.float64, np.float32):
        got = get_op("moe_experts").reference([a.astype(dtype) for a in (x, gates, *ws)], {})[0]
        assert got.dtype == dtype
        np.testing.assert_allclose(got, experts_dense_reference(x, gates, *ws),
                                   rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-5 if dtype == np.float32 else 1e-12)


@SETTINGS
@given(seed=seeds, b=st.integers(1, 2), s=st.integers(1, 5), h=st.integers(1, 5), f=st.integers(1, 4),
       e=st.integers(1, 4), data=st.data())
def test_experts_backward_matches_finite_differences(seed, b, s, h, f, e, data):
    k = data.draw(st.integers(1, e))
    rng = np.random.default_rng(seed)
    x, gates, ws = _expert_inputs(rng, b, s, h, f, e, k)
    # h and the weights with the routing as drawn (zero gates = unrouted pairs stay unrouted)...
    check_backward_against_fd("moe_experts", [x, gates, *ws], {"top_k": k}, rng, wrt=[0, 2, 3, 4])
    # ...and the gates where every pair is routed (a zero gate has no derivative: perturbing it routes the pair)
    dense = rng.uniform(0.1, 1.0, gates.shape)
    check_backward_against_fd("moe_experts", [x, dense, *ws], {"top_k": e}, rng, wrt=[1])


SPEC = load_spec({"name": "moe", "vocab_size": 23, "hidden_size": 16, "num_layers": 2, "num_heads": 2,
                  "mlp_hidden": 12, "max_seq_len": 16, "moe": {"experts": 4, "top_k": 2, "aux_loss_coef": 0.5}})


def test_moe_model_gradients_match_finite_differences():
    b, s = 2, 5
    rng = np.random.default_rng(0)
    params = {k: v * 10.0 if v.ndim > 1 else 1.0 + 0.3 * rng.standard_normal(v.shape)
              for k, v in init_params(SPEC, 1, dtype="float64").items()}
    toks = rng.integers(0, 23, (b, s + 1)).astype(np.int32)
    feeds = {"tokens": toks[:, :-1].copy(), "targets": toks[:, 1:].copy()}
    fwd = build(SPEC, b, s, dtype="float64")
    grads = compile(autodiff(fwd, fwd.outputs["loss"])).run({k: v.copy() for k, v in params.items()}, feeds)
    loss_prog = compile(build(SPEC, b, s, dtype="float64"))
    out = loss_prog.run(params, feeds)
    assert float(out["loss"]) == pytest.approx(float(out["cross_entropy"]) + float(out["aux_loss"]), rel=1e-12)
    assert float(out["aux_loss"]) > 0.5  # two layers at coef 0.5: about 1.0 when balanced
    eps = 1e-6
    for name, value in params.items():
        d = rng.standard_normal(value.shape)
        plus = {**params, name: value + eps * d}
        minus = {**params, name: value - eps * d}
        fd = (float(loss_prog.run(plus, feeds)["loss"]) - float(loss_prog.run(minus, feeds)["loss"])) / (2 * eps)
        assert float(np.sum(grads["grad:" + name] * d)) == pytest.approx(fd, rel=1e-6, abs=1e-9), name


def test_moe_parameters_and_flops_count_routed_experts_only():
    shapes = param_shapes(SPEC)
    assert shapes["layers.0.router"] == (16, 4) and shapes["layers.0.expert_w1"] == (4, 16, 12)
    assert shapes["layers.0.expert_w2"] == (4, 12, 16) and "layers.0.w1" not in shapes
    g = Graph()
    h = g.input("h", (2, 5, 16))
    gates = g.input("g", (2, 5, 4))
    ws = [g.param(n, shapes[f"layers.0.expert_{n}"]) for n in ("w1", "w3", "w2")]
    y = g.call("moe_experts", h, gates, *ws, top_k=2)
    assert get_op("moe_experts").flops(y.producer) == 10 * 2 * (3 * 2 * 16 * 12 + 2 * 16)


def test_op_checks_name_the_fix():
    g = Graph()
    logits = g.input("l", (2, 3, 4))
    with pytest.raises(ShapeError, match="top_k=5 is more than the 4 experts"):
        g.call("moe_router", logits, top_k=5)
    h = g.input("h", (2, 3, 8))
    w = g.param("w", (4, 8, 6))
    with pytest.raises(ShapeError, match=r"w2 \[4, 8, 6\] must be \[experts, F, H\]"):
        g.call("moe_experts", h, logits, w, w, w)


def test_mixtral_spec_parameter_count():
    from pathlib import Path

    spec = load_spec(Path(__file__).resolve().parent.parent / "specs" / "mixtral-8x7b.yaml")
    assert (spec.moe.experts, spec.moe.top_k) == (8, 2)
    assert sum(int(np.prod(s)) for s in param_shapes(spec).values()) == 46_702_792_704  # the model card's count
