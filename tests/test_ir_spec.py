"""Model specs: the shipped specs load, bad specs are rejected with one-line messages naming the field and the fix,
parameter counts, and the `describe` command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from tilegraph.graph import build, init_params, load_spec, param_shapes

from tilegraph.cli import main
from tilegraph.errors import ShapeError, SpecError

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"

NANO = {
    "name": "nano",
    "vocab_size": 256,
    "hidden_size": 256,
    "num_layers": 6,
    "num_heads": 8,
    "mlp_hidden": 768,
    "max_seq_len": 512,
}


def test_shipped_specs_load():
    nano = load_spec(SPECS / "nano-trickster.yaml")
    assert (nano.vocab_size, nano.hidden_size, nano.num_layers, nano.num_heads) == (256, 256, 6, 8)
    assert (nano.num_kv_heads, nano.mlp_hidden, nano.max_seq_len, nano.tie_embeddings) == (8, 768, 512, True)
    assert nano.head_dim == 32 and nano.rope_base == 10000.0 and nano.norm_eps == 1e-5
    tl = load_spec(SPECS / "tinyllama.yaml")
    assert (tl.vocab_size, tl.hidden_size, tl.num_layers, tl.num_heads, tl.num_kv_heads) == (32000, 2048, 22, 32, 4)
    assert (tl.mlp_hidden, tl.max_seq_len, tl.tie_embeddings, tl.head_dim) == (5632, 2048, False, 64)


def test_defaults():
    spec = load_spec(NANO)
    assert spec.num_kv_heads == 8  # defaults to num_heads
    assert spec.tie_embeddings is True and spec.norm_eps == 1e-5 and spec.rope_base == 10000.0


def _count(spec) -> int:
    """Parameter count written out from the architecture, independently of param_shapes."""
    H, V, F, L = spec.hidden_size, spec.vocab_size, spec.mlp_hidden, spec.num_layers
    kv = spec.num_kv_heads * spec.head_dim
    per_layer = 2 * H + H * H + 2 * H * kv + H * H + 3 * H * F
    return V * H + L * per_layer + H + (0 if spec.tie_embeddings else H * V)


def test_param_counts():
    nano = load_spec(SPECS / "nano-trickster.yaml")
    shapes = param_shapes(nano)
    assert sum(int(np.prod(s)) for s in shapes.values()) == 5_180_672  # the number the project states
    assert _count(nano) == 5_180_672
    tl = load_spec(SPECS / "tinyllama.yaml")
    assert sum(int(np.prod(s)) for s in param_shapes(tl).values()) == _count(tl) == 1_100_048_384  # TinyLlama-1.1B
    assert param_shapes(tl)["lm_head"] == (2048, 32000) and "lm_head" not in shapes


def test_init_params():
    spec = load_spec(SPECS / "tiny-test.yaml")
    p = init_params(spec, seed=3)
    assert set(p) == set(param_shapes(spec))
    assert all(a.dtype == np.float32 for a in p.values())
    assert np.all(p["final_norm"] == 1.0) and np.all(p["layers.1.attn_norm"] == 1.0)
    big = init_params(load_spec(SPECS / "nano-trickster.yaml"), seed=0)
    assert abs(big["layers.0.w1"].std() - 0.02) < 1e-3
    # Residual projections are scaled down by 1/sqrt(2 * layers) (GPT-2), so the residual stream does not grow.
    assert abs(big["layers.0.w2"].std() - 0.02 / np.sqrt(12)) < 1e-3
    again = init_params(spec, seed=3)
    assert all(np.array_equal(p[k], again[k]) for k in p)
    assert not np.array_equal(init_params(spec, seed=4)["layers.0.wq"], p["layers.0.wq"])


BAD = [
    ({"hidden_size": 256, "num_heads": 7}, "hidden_size", "not divisible by num_heads 7"),
    ({"num_kv_heads": 3}, "num_kv_heads", "does not divide num_heads 8"),
    ({"colour": "red"}, "colour", "unknown field"),
    ({"hidden_size": 0}, "hidden_size", "positive integer"),
    ({"num_layers": -2}, "num_layers", "positive integer"),
    ({"vocab_size": "256"}, "vocab_size", "positive integer"),
    ({"num_heads": 8.0}, "num_heads", "positive integer"),
    ({"mlp_hidden": True}, "mlp_hidden", "positive integer"),
    ({"tie_embeddings": "yes please"}, "tie_embeddings", "true or false"),
    ({"norm_eps": -1.0}, "norm_eps", "positive"),
    ({"mlp": "mish"}, "mlp", "not supported"),
    ({"norm": "batchnorm"}, "norm", "not supported"),
    ({"positions": "rotary"}, "positions", "not supported"),
    ({"dropout": 1.0}, "dropout", "[0, 1)"),
    ({"hidden_size": 9, "num_heads": 3, "positions": "sinusoidal"}, "hidden_size", "sinusoidal"),
    ({"hidden_size": 24, "num_heads": 8}, "head_dim", "odd"),
]


@pytest.mark.parametrize("change, field, message", BAD)
def test_bad_spec_names_field(change, field, message):
    with pytest.raises(SpecError) as err:
        load_spec({**NANO, **change})
    text = str(err.value)
    assert field in text and message in text and "\n" not in text


def test_missing_field():
    spec = dict(NANO)
    del spec["vocab_size"]
    with pytest.raises(SpecError, match="missing required field 'vocab_size'"):
        load_spec(spec)


def test_seq_longer_than_max_is_rejected():
    spec = load_spec(SPECS / "tiny-test.yaml")
    with pytest.raises(ShapeError, match="max_seq_len"):
        build(spec, 1, spec.max_seq_len + 1)


@pytest.mark.parametrize("change, field, message", BAD[:4])
def test_cli_bad_spec_one_line_exit_2(tmp_path, change, field, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**NANO, **change}))
    proc = subprocess.run(
        [sys.executable, "-m", "tilegraph", "describe", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and str(path) in lines[0]
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_cli_missing_file_and_bad_yaml(tmp_path, capsys):
    assert main(["describe", str(tmp_path / "nope.yaml")]) == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "broken.yaml"
    bad.write_text("name: [unclosed\n")
    assert main(["describe", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "not valid YAML" in err and len(err.strip().splitlines()) == 1


def test_describe_prints_counts_and_flops(capsys):
    assert main(["describe", str(SPECS / "nano-trickster.yaml"), "--batch", "2", "--seq", "64"]) == 0
    out = capsys.readouterr().out
    assert "5,180,672" in out
    fwd = int(next(line for line in out.splitlines() if "forward" in line and "step" not in line).split()[1].replace(",", ""))
    # Forward FLOPs per token, written out: 2 per weight in every matmul (tied logits included) plus causal
    # attention (QK^T and PV: 2 * 2 * S * H per layer, halved by the mask); elementwise ops add a little more.
    spec = load_spec(SPECS / "nano-trickster.yaml")
    matmul = 2 * (5_180_672 - 65_536 - 3_328) + 2 * 256 * 256
    attn = spec.num_layers * 2 * 2 * 64 * 256 // 2
    assert matmul + attn <= fwd < 1.05 * (matmul + attn)
    # A training step does every matmul three times (forward, dX, dW) and attention's backward recomputes the
    # scores (2.5x its forward), so the step costs about 3x the forward pass.
    train = int(next(line for line in out.splitlines() if "training step" in line).split()[2].replace(",", ""))
    assert 2.9 * fwd < train < 3.2 * fwd


_ANY = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 600), st.floats(allow_nan=True), st.text(max_size=5), st.lists(st.integers(), max_size=2)
)


@settings(deadline=None, max_examples=150, derandomize=True, database=None)
@given(changes=st.dictionaries(st.sampled_from([*NANO, "num_kv_heads", "norm_eps", "tie_embeddings", "bias"]), _ANY, max_size=3))
def test_any_spec_loads_consistently_or_raises_spec_error(changes):
    """Whatever a spec file holds, load_spec returns a consistent spec or raises SpecError -- nothing else."""
    try:
        spec = load_spec({**NANO, **changes})
    except SpecError as e:
        assert "\n" not in str(e)
        return
    assert spec.hidden_size % spec.num_heads == 0 and spec.num_heads % spec.num_kv_heads == 0
    assert min(spec.vocab_size, spec.hidden_size, spec.num_layers, spec.mlp_hidden, spec.max_seq_len) > 0
    assert spec.head_dim % 2 == 0 and spec.norm_eps > 0
