"""Communication volume of one llama-3-70b training step on galaxy equals the analytic Megatron-style count.

Galaxy is an 8x4 mesh: tensor parallel TP=8 on axis 0, data parallel DP=4 on axis 1. Per device, with b = B/DP
sequences of length S per replica, L layers, hidden H, vocab V, e = 2 bytes (bfloat16 activations and gradients),
payload = the tensor each collective's cost formula takes (all_reduce: the per-device tensor; all_gather: the
gathered tensor):

TP axis (0):
  all_reduce  = (4L + 1) * b*S*H * e
      forward: 2 per layer (after the row-parallel wo and w2);
      backward: 2 per layer (input gradient of the column-parallel wq/wk/wv and w1/w3) + 1 (input gradient of the
      vocab-parallel lm_head)
  all_gather  = b*S*V * e   (vocab-parallel logits gathered for the loss)
              + TP * 4      (the per-device norms of the TP-split gradients, float32, stacked for clipping)
DP axis (1):
  all_reduce  = e * sum over params of their per-device size (wq, wk, wv, wo, w1, w2, w3, lm_head split TP ways;
                embedding and norms replicated)
              + 4           (the loss: mean of the replicas' mean losses, float32)
"""

import numpy as np
import pytest
from tilegraph.graph.autodiff import training_step
from tilegraph.graph.build import param_shapes
from tilegraph.graph.meshes import get_mesh
from tilegraph.graph.passes.cost import comm_volume
from tilegraph.graph.passes.plan_memory import plan_memory
from tilegraph.graph.passes.shard import shard
from tilegraph.graph.spec import load_spec

SPEC = "specs/llama-3-70b.yaml"
TP_SPLIT = ("wq", "wk", "wv", "wo", "w1", "w2", "w3", "lm_head")


@pytest.mark.parametrize("batch,seq", [(4, 2048), (8, 512)])
def test_llama_70b_galaxy_training_comm_volume(batch, seq):
    spec = load_spec(SPEC)
    mesh = get_mesh("galaxy")
    sharded = shard(training_step(spec, batch, seq), mesh)
    assert (sharded.tp_axis, sharded.dp_axis) == (0, 1)
    tp, dp = mesh.shape
    L, H, V, e = spec.num_layers, spec.hidden_size, spec.vocab_size, 2
    b = batch // dp

    grad_bytes = 0
    for name, shape in param_shapes(spec).items():
        n = int(np.prod(shape))
        grad_bytes += e * (n // tp if name.rsplit(".", 1)[-1] in TP_SPLIT else n)
    expected = {
        ("all_reduce", 0): (4 * L + 1) * b * seq * H * e,
        ("all_gather", 0): b * seq * V * e + tp * 4,
        ("all_reduce", 1): grad_bytes + 4,
    }
    plan = plan_memory(sharded, mesh.chip.dram_bytes)
    assert comm_volume(sharded, plan) == expected
