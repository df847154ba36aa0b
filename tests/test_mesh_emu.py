"""Sharded Programs with our kernels: `Target(backend="emu", mesh=...)` runs every kernel step SPMD, once per device
of the virtual mesh on that device's shard (runtime/mesh_backend.py SpmdExecutor, the dispatch the ttnn backend
shares), collectives by their numpy semantics. Checked against the numpy backend on the unsharded Program."""

from __future__ import annotations

import numpy as np
import pytest
from tilegraph.graph import init_params
from tilegraph.graph.spec import ModelSpec
from tilegraph.runtime.mesh_backend import SpmdExecutor
from tilegraph.train.model import TrainingPrograms

from tilegraph.compiler import Target

# Small enough for CI, large enough for the kernels (head_dim 32) and for a 1x2 mesh to split heads and the MLP.
SPEC = ModelSpec(name="mesh-emu", vocab_size=64, hidden_size=128, num_layers=1, num_heads=4, num_kv_heads=2,
                 mlp_hidden=128, max_seq_len=32)


def _losses(target: Target, steps: int = 2) -> tuple[list[float], TrainingPrograms]:
    programs = TrainingPrograms(SPEC, 2, 32, target=target)
    state = programs.init_state(init_params(SPEC, 0))
    x = np.random.default_rng(1).integers(0, SPEC.vocab_size, (2, 32))
    return [programs.train_step(state, x, np.roll(x, -1, 1), 1e-3, i).loss for i in range(1, steps + 1)], programs


@pytest.fixture(scope="module")
def reference_losses():
    return _losses(Target(backend="numpy"))[0]


def test_a_sharded_program_runs_its_kernel_steps_on_every_device(reference_losses):
    losses, programs = _losses(Target(backend="emu", mesh="n300"))
    ex = programs.train_program.prepare()
    assert isinstance(ex, SpmdExecutor) and ex.shape == (1, 2)
    for op in ("attention", "attention_bwd", "rmsnorm", "rmsnorm_bwd", "swiglu", "swiglu_bwd"):
        assert op in ex.kernel_steps, op
    assert {"all_reduce"} <= set(ex.fallback_steps())  # the collectives of the tensor-parallel layout
    # Every kernel rounds its inputs and outputs to bf16 (u = 2^-8); the second loss follows the first update.
    # The single-chip emu run (tests/test_kern_*.py) agrees with numpy to ~1e-4 here; 2^-8 relative is one bf16
    # rounding of the loss itself, so a wrong shard (a head or an MLP column on the wrong device) cannot hide in it.
    for got, want in zip(losses, reference_losses):
        assert abs(got - want) <= 2.0**-8 * want


def test_the_kernel_steps_see_each_devices_shard():
    # A 1x2 mesh with heads split: each device's attention has 2 of the 4 query heads and 1 of the 2 kv heads.
    programs = TrainingPrograms(SPEC, 2, 32, target=Target(backend="emu", mesh="n300"))
    attn = [s for s in programs.train_program.steps if s.op == "attention"]
    assert attn and all(s.attrs["heads"] == 2 and s.attrs["kv_heads"] == 1 for s in attn)
    assert all(s.input_shapes[0][-1] == 64 for s in attn)  # 2 heads x head_dim 32 per device
