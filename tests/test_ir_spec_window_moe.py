"""Spec options `attention_window` and `moe`: accepted values, and rejections that name the field and the fix."""

from __future__ import annotations

import pytest
from tilegraph.graph import load_spec

from tilegraph.errors import SpecError

BASE = {"name": "t", "vocab_size": 256, "hidden_size": 64, "num_layers": 1, "num_heads": 2, "mlp_hidden": 128,
        "max_seq_len": 64}


def test_window_and_moe_load_and_round_trip():
    spec = load_spec({**BASE, "attention_window": 16, "moe": {"experts": 4, "top_k": 1}})
    assert spec.attention_window == 16
    assert (spec.moe.experts, spec.moe.top_k, spec.moe.aux_loss_coef) == (4, 1, 0.01)
    assert load_spec(spec.to_dict()) == spec  # config.json / checkpoints store to_dict()
    plain = load_spec(BASE)
    assert plain.attention_window is None and plain.moe is None
    assert load_spec({**BASE, "moe": {"experts": 8}}).moe.top_k == 2  # Mixtral's default


@pytest.mark.parametrize(
    "extra, words",
    [
        ({"attention_window": 0}, ["'attention_window'", "got 0", "set it >= 1", "remove the field"]),
        ({"attention_window": -5}, ["'attention_window'", "got -5"]),
        ({"attention_window": True}, ["'attention_window'", "got True"]),
        ({"attention_window": 4.5}, ["'attention_window'", "got 4.5"]),
        ({"moe": {"experts": 2, "top_k": 3}}, ["'moe.top_k' 3", "moe.experts 2", "set top_k <= 2"]),
        ({"moe": {"experts": 0}}, ["'moe.experts'", "got 0", ">= 1"]),
        ({"moe": {"experts": 4, "top_k": 0}}, ["'moe.top_k'", "got 0"]),
        ({"moe": {"top_k": 2}}, ["'moe' needs 'experts'", "moe: {experts: 8, top_k: 2}"]),
        ({"moe": {"experts": 4, "k": 2}}, ["unknown key 'k'", "experts, top_k, aux_loss_coef"]),
        ({"moe": 8}, ["field 'moe' must be a mapping", "got 8"]),
        ({"moe": {"experts": 4, "aux_loss_coef": -1}}, ["'moe.aux_loss_coef'", ">= 0", "got -1"]),
    ],
)
def test_bad_options_name_field_and_fix(extra, words):
    with pytest.raises(SpecError) as err:
        load_spec({**BASE, **extra})
    msg = str(err.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, (w, msg)
