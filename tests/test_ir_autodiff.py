"""Autodiff on the whole model: gradients of the tiny spec against central finite differences (float64), and the
tied embedding's gradient as the sum of its two uses."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tilegraph.graph import autodiff, build, init_params, load_spec

from tilegraph.compiler import compile
from tilegraph.errors import ShapeError

SPEC = load_spec(Path(__file__).resolve().parent.parent / "specs" / "tiny-test.yaml")
B, S = 2, 7  # seq 7: not a multiple of any tile size; GQA 4 heads over 2 kv heads (from the spec)


def _params(spec, seed: int) -> dict[str, np.ndarray]:
    """float64 params, perturbed away from the init (norm gains != 1, larger weights) so every path matters."""
    rng = np.random.default_rng(seed)
    params = init_params(spec, seed, dtype="float64")
    for name, a in params.items():
        if a.ndim == 1:
            params[name] = 1.0 + 0.3 * rng.standard_normal(a.shape)
        else:
            params[name] = a * 10.0
    return params


def _feeds(spec, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    toks = rng.integers(0, spec.vocab_size, (B, S + 1)).astype(np.int32)
    toks[0, 3] = toks[1, 5] = toks[0, 0]  # repeated ids: embedding_bwd must accumulate rows
    return {"tokens": toks[:, :-1].copy(), "targets": toks[:, 1:].copy()}


def _loss_fn(spec):
    prog = compile(build(spec, B, S, dtype="float64"))
    return lambda params, feeds: float(prog.run(params, feeds)["loss"])


def _grads(spec, params, feeds) -> dict[str, np.ndarray]:
    fwd = build(spec, B, S, dtype="float64")
    prog = compile(autodiff(fwd, fwd.outputs["loss"]))
    out = prog.run({k: v.copy() for k, v in params.items()}, feeds)
    return {k[len("grad:"):]: v for k, v in out.items() if k.startswith("grad:")}


# float64 central differences with eps=1e-6: the truncation error ~eps^2 * |f'''| was measured at ~1e-8 relative
# for these (deliberately large) weights and shrinks 100x per 10x smaller eps, while rounding is only
# ~1e-16 * |loss| / eps ~ 1e-10; directional derivatives are of order 1e-2..1. rtol 1e-6 leaves a wide margin
# yet catches any wrong rule (those are off by O(1)).
EPS, RTOL, ATOL = 1e-6, 1e-6, 1e-9


def _central_difference(loss, params, feeds, direction: dict[str, np.ndarray]) -> float:
    plus = {k: v + EPS * direction.get(k, 0.0) for k, v in params.items()}
    minus = {k: v - EPS * direction.get(k, 0.0) for k, v in params.items()}
    return (loss(plus, feeds) - loss(minus, feeds)) / (2 * EPS)


@pytest.mark.parametrize("tied", [True, False])
def test_whole_model_gradients_match_finite_differences(tied):
    spec = replace(SPEC, tie_embeddings=tied)
    params, feeds = _params(spec, 1), _feeds(spec, 2)
    grads = _grads(spec, params, feeds)
    assert set(grads) == set(params)
    loss = _loss_fn(spec)
    rng = np.random.default_rng(3)
    # One random direction per parameter (checks each whole gradient tensor), then one over all of them at once.
    for name in params:
        d = {name: rng.standard_normal(params[name].shape)}
        fd = _central_difference(loss, params, feeds, d)
        an = float(np.sum(grads[name] * d[name]))
        assert an == pytest.approx(fd, rel=RTOL, abs=ATOL), name
    d = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    fd = _central_difference(loss, params, feeds, d)
    assert sum(float(np.sum(grads[k] * d[k])) for k in params) == pytest.approx(fd, rel=RTOL, abs=ATOL)


def test_single_coordinates_of_embedding_and_norm():
    # A few coordinates on their own: rows of the embedding that are and are not looked up, and a norm gain.
    params, feeds = _params(SPEC, 4), _feeds(SPEC, 5)
    grads = _grads(SPEC, params, feeds)
    loss = _loss_fn(SPEC)
    used = int(feeds["tokens"][0, 0])
    unused = next(i for i in range(SPEC.vocab_size) if i not in set(feeds["tokens"].ravel()))
    for name, idx in [("tok_embedding", (used, 3)), ("tok_embedding", (unused, 0)), ("layers.1.mlp_norm", (5,))]:
        d = np.zeros_like(params[name])
        d[idx] = 1.0
        fd = _central_difference(loss, params, feeds, {name: d})
        assert grads[name][idx] == pytest.approx(fd, rel=RTOL, abs=ATOL), (name, idx)


def test_tied_embedding_gradient_is_sum_of_both_uses():
    # Untied model with lm_head = tok_embedding^T computes the same function, so the tied gradient must be the
    # lookup gradient plus the output-projection gradient (transposed).
    params, feeds = _params(SPEC, 6), _feeds(SPEC, 7)
    tied = _grads(SPEC, params, feeds)
    untied_spec = replace(SPEC, tie_embeddings=False)
    untied = _grads(untied_spec, {**params, "lm_head": params["tok_embedding"].T.copy()}, feeds)
    assert not np.allclose(untied["tok_embedding"], 0) and not np.allclose(untied["lm_head"], 0)
    np.testing.assert_allclose(tied["tok_embedding"], untied["tok_embedding"] + untied["lm_head"].T, rtol=1e-12, atol=1e-14)
    for name in params:
        if name != "tok_embedding":
            np.testing.assert_allclose(tied[name], untied[name], rtol=1e-12, atol=1e-14)


def test_gradient_accumulation_node_and_purity():
    fwd = build(SPEC, B, S)
    before = str(fwd)
    g = autodiff(fwd, "loss")
    assert str(fwd) == before  # autodiff returns a new graph
    acc = [n for n in g.nodes if n.outputs[0].name == "grad_acc:tok_embedding"]
    assert len(acc) == 1 and acc[0].op == "add"
    assert g.outputs["grad:tok_embedding"] is acc[0].outputs[0]
    with pytest.raises(ShapeError, match="scalar loss"):
        autodiff(fwd, fwd.outputs["logits"])
    with pytest.raises(ShapeError, match="no output 'nope'"):
        autodiff(fwd, "nope")


@settings(deadline=None, max_examples=25, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    heads_kv=st.sampled_from([(1, 1), (2, 1), (2, 2), (4, 1), (4, 2)]),
    head_dim=st.sampled_from([2, 4, 6]),
    layers=st.integers(1, 2),
    tied=st.booleans(),
    batch=st.integers(1, 2),
    seq=st.integers(1, 6),
    seed=st.integers(0, 2**16),
)
def test_random_small_models_gradients_match_finite_differences(heads_kv, head_dim, layers, tied, batch, seq, seed):
    heads, kv = heads_kv
    spec = load_spec({
        "name": "fuzz", "vocab_size": 7, "hidden_size": heads * head_dim, "num_layers": layers, "num_heads": heads,
        "num_kv_heads": kv, "mlp_hidden": 5, "max_seq_len": 8, "tie_embeddings": tied,
    })  # fmt: skip
    rng = np.random.default_rng(seed)
    params = {k: v * 10.0 if v.ndim == 2 else 1.0 + 0.3 * rng.standard_normal(v.shape)
              for k, v in init_params(spec, seed, dtype="float64").items()}  # fmt: skip
    toks = rng.integers(0, spec.vocab_size, (batch, seq + 1)).astype(np.int32)
    feeds = {"tokens": toks[:, :-1].copy(), "targets": toks[:, 1:].copy()}
    fwd = build(spec, batch, seq, dtype="float64")
    out = compile(autodiff(fwd, "loss")).run(dict(params), feeds)
    loss = compile(fwd)
    d = {k: rng.standard_normal(v.shape) for k, v in params.items()}
    f = lambda s: float(loss.run({k: v + s * EPS * d[k] for k, v in params.items()}, feeds)["loss"])
    fd = (f(1.0) - f(-1.0)) / (2 * EPS)
    an = sum(float(np.sum(out[f"grad:{k}"] * d[k])) for k in params)
    assert an == pytest.approx(fd, rel=RTOL, abs=ATOL)
