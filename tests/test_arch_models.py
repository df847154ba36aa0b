"""Whole models built from the issue-14 vocabulary: parameter counts of the shipped specs (numbers from the public
model cards), whole-model gradients against finite differences, sharded execution equal to one device, `describe`
side by side, and gpt2-tiny training a few steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tilegraph.graph import autodiff, build, init_params, load_spec, param_shapes
from tilegraph.graph.autodiff import training_step
from tilegraph.graph.passes.shard import shard
from tilegraph.runtime.mesh_backend import MeshExecutor

from tilegraph.cli import main
from tilegraph.compiler import compile
from tilegraph.errors import DeviceError

SPECS = Path(__file__).resolve().parent.parent / "specs"


def _params_of(spec) -> int:
    return sum(int(np.prod(s)) for s in param_shapes(load_spec(spec)).values())


@pytest.mark.parametrize("spec, count", [
    ("gpt2-small.yaml", 124_439_808),     # GPT-2 124M (OpenAI's model card / HF gpt2)
    ("mistral-7b.yaml", 7_241_732_096),   # Mistral-7B-v0.1
    ("nano-trickster-gelu.yaml", 5_180_672),   # equal to nano-trickster by construction (mlp_hidden 1152)
])  # fmt: skip
def test_shipped_spec_parameter_counts(spec, count):
    assert _params_of(SPECS / spec) == count


def test_gpt2_tiny_is_a_few_hundred_thousand_parameters():
    assert 100_000 <= _params_of(SPECS / "gpt2-tiny.yaml") <= 900_000


BASE = {"name": "mini", "vocab_size": 23, "hidden_size": 32, "num_layers": 2, "num_heads": 8, "num_kv_heads": 2,
        "mlp_hidden": 24, "max_seq_len": 16, "tie_embeddings": True}  # fmt: skip
VARIANTS = {
    "gpt2-style": {"norm": "layernorm", "bias": True, "mlp": "gelu", "positions": "learned", "num_kv_heads": 8},
    "geglu-sinusoidal": {"mlp": "geglu", "positions": "sinusoidal", "tie_embeddings": False},
    "relu-nopos-layernorm": {"mlp": "relu", "positions": "none", "norm": "layernorm"},
    "alibi-mqa": {"positions": "alibi", "num_kv_heads": 1, "bias": True},
    "mqa-bias": {"num_kv_heads": 1, "bias": True, "norm": "layernorm"},
}
B, S = 2, 7


def _spec(name):
    return load_spec({**BASE, **VARIANTS[name], "name": name})


def _perturbed(spec, seed):
    rng = np.random.default_rng(seed)
    params = init_params(spec, seed, dtype="float64")
    return {k: (1.0 + 0.3 * rng.standard_normal(a.shape) if a.ndim == 1 else a * 10.0) for k, a in params.items()}


def _feeds(spec, seed):
    rng = np.random.default_rng(seed)
    toks = rng.integers(0, spec.vocab_size, (B, S + 1)).astype(np.int32)
    return {"tokens": toks[:, :-1].copy(), "targets": toks[:, 1:].copy()}


# As tests/test_ir_autodiff.py: float64 central differences, eps 1e-6, rtol 1e-6 (truncation ~1e-8 relative).
EPS, RTOL, ATOL = 1e-6, 1e-6, 1e-9


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_whole_model_gradients_match_finite_differences(variant):
    spec = _spec(variant)
    params, feeds = _perturbed(spec, 1), _feeds(spec, 2)
    fwd = build(spec, B, S, dtype="float64")
    grads = compile(autodiff(fwd, fwd.outputs["loss"])).run({k: v.copy() for k, v in params.items()}, feeds)
    loss_prog = compile(fwd)

    def loss(p):
        return float(loss_prog.run(p, feeds)["loss"])

    rng = np.random.default_rng(3)
    for name in params:  # one random direction per parameter tensor
        d = rng.standard_normal(params[name].shape)
        plus, minus = dict(params), dict(params)
        plus[name], minus[name] = params[name] + EPS * d, params[name] - EPS * d
        fd = (loss(plus) - loss(minus)) / (2 * EPS)
        assert float(np.sum(grads[f"grad:{name}"] * d)) == pytest.approx(fd, rel=RTOL, abs=ATOL), name


@pytest.mark.parametrize("mesh", ["n300", "t3k", "galaxy"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_sharded_training_step_equals_single_device(variant, mesh):
    """As tests/test_mesh_equivalence.py (float64, rtol 1e-9: only summation order differs)."""
    spec = _spec(variant)
    graph = training_step(spec, 4, 8, dtype="float64", keep_grads=True)
    params = init_params(spec, seed=0, dtype="float64")
    rng = np.random.default_rng(1)
    feeds = {"tokens": rng.integers(0, spec.vocab_size, (4, 8)).astype(np.int32),
             "targets": rng.integers(0, spec.vocab_size, (4, 8)).astype(np.int32),
             "lr": np.float64(3e-3), "step": np.float64(1.0)}  # fmt: skip
    prog = compile(graph)
    ref_state = prog.init_state(params)
    ref = prog.run(ref_state, feeds)
    state = prog.init_state(params)
    out = MeshExecutor(shard(graph, mesh)).run(state, feeds)
    for key in ref:
        np.testing.assert_allclose(out[key], ref[key], rtol=1e-9, atol=1e-12, err_msg=f"{key} on {mesh}")
    for key in ref_state:
        np.testing.assert_allclose(state[key], ref_state[key], rtol=1e-9, atol=1e-12, err_msg=f"{key} on {mesh}")


def test_alibi_attention_refuses_the_device_kernel():
    from tilegraph.runtime.kernel_ops import run_kernel_op

    q = np.zeros((1, 32, 64), np.float32)
    with pytest.raises(DeviceError, match="op 'attention': alibi=True: kernels/attention adds no position bias"):
        run_kernel_op("attention", [q, q, q], {"heads": 2, "kv_heads": 2, "causal": True, "alibi": True})


@pytest.mark.parametrize("field, value", [("positions", "alibi"), ("attention_window", 16)])
def test_place_puts_attention_the_kernels_refuse_on_the_host_or_a_ttnn_composite(field, value):
    """The place pass asks each kernel op whether it runs a call (KernelOp.refuses): ALiBi attention goes to numpy
    on emu and to a ttnn composite on a device, never to a kernel that would stop the run; a sliding window runs
    on the kernels, forward and backward (kernels/attention/README.md)."""
    from tilegraph.graph import load_spec, training_step
    from tilegraph.graph.passes.place import device_impl

    from tilegraph.compiler import Target, compile

    spec = load_spec(SPECS / "nano-trickster.yaml").to_dict()
    spec.update({"name": "refused", "num_layers": 1, field: value})
    step = training_step(load_spec(spec), 1, 64)
    program = compile(step, Target(backend="emu"))
    impls = {s.op: s.impl for s in program.steps if s.op.startswith("attention")}
    refused = {"positions": {"attention", "attention_bwd"}, "attention_window": set()}[field]
    for op, impl in impls.items():
        assert impl == ("numpy" if op in refused else f"kernel:{op}"), (op, impl)
    for node in step.nodes:
        if node.op in refused:
            assert device_impl(node).startswith("ttnn:composite"), node.op


def test_describe_side_by_side(capsys):
    assert main(["describe", str(SPECS / "gpt2-tiny.yaml"), str(SPECS / "nano-trickster.yaml"), "--seq", "64"]) == 0
    out = capsys.readouterr().out
    total = next(line for line in out.splitlines() if line.strip().startswith("total") and "," in line)
    assert f"{_params_of(SPECS / 'gpt2-tiny.yaml'):,}" in total and "5,180,672" in total
    shares = {}
    for comp in ("attention", "mlp", "other"):
        line = [ln for ln in out.splitlines() if ln.strip().startswith(comp) and ln.strip().endswith("%")][-1]
        shares[comp] = [float(c.rstrip("%")) for c in line.split()[1:]]
    assert all(abs(sum(s[i] for s in shares.values()) - 100) < 0.2 for i in range(2))
    # nano-trickster: the MLP holds 3/4.5 of the block's weights, so most of a step's matmul FLOPs.
    assert shares["mlp"][1] > shares["attention"][1] > shares["other"][1]
    weights = next(ln for ln in out.splitlines() if ln.strip().startswith("weights"))
    assert "19.8 MiB" in weights  # 5,180,672 float32 weights = 19.76 MiB


def test_gpt2_tiny_trains_with_decreasing_loss(tmp_path):
    from tilegraph.train import loop
    from tilegraph.train.config import TrainConfig

    spec = yaml_dict(SPECS / "gpt2-tiny.yaml")
    cfg = TrainConfig(steps=12, batch=4, seq=64, lr=3e-3, min_lr=3e-4, warmup=2, eval_interval=12, eval_batches=2)
    run = loop.start_run(spec, cfg, tmp_path / "run")
    summary = loop.train(run)
    losses = [loss for _, loss in run.history.train]
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.3  # from ~ln(256) = 5.5 down
    assert summary.final_val_loss is not None and summary.final_val_loss < losses[0]


def yaml_dict(path):
    import yaml

    return yaml.safe_load(Path(path).read_text())


def test_compare_command_table_and_plot(tmp_path, capsys):
    out = tmp_path / "cmp"
    tiny = yaml_dict(SPECS / "gpt2-tiny.yaml")
    specs = []
    for name, change in (("a", {}), ("b", {"num_kv_heads": 1})):
        p = tmp_path / f"{name}.yaml"
        import yaml

        p.write_text(yaml.safe_dump({**tiny, **change, "name": f"tiny-{name}"}))
        specs.append(str(p))
    args = ["compare", *specs, "--out", str(out), "--steps", "4", "--batch", "2", "--seq", "32",
            "--eval-interval", "2", "--eval-batches", "1", "--warmup", "1"]  # fmt: skip
    assert main(args) == 0
    table = (out / "compare.md").read_text()
    assert "| tiny-a |" in table and "| tiny-b |" in table and "(step 4)" in table
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    # Again with --no-train: the same table from the checkpoints, nothing retrained.
    capsys.readouterr()
    assert main([*args, "--no-train"]) == 0
    assert (out / "compare.md").read_text() == table
