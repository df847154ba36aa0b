"""tilegraph.ops: one module per op; importing this package registers all of them in REGISTRY."""

# Op modules are imported here so that REGISTRY is complete after `import tilegraph.ops`.
from tilegraph.ops import (  # noqa: F401
    activation,
    all_gather,
    all_reduce,
    all_to_all,
    attention,
    attention_decode,
    bias,
    cross_entropy,
    dropout,
    elementwise,
    embedding,
    kv_cache_write,
    layernorm,
    linear,
    mesh_partition,
    moe,
    moe_dispatch,
    optimizer,
    positions,
    reduce_scatter,
    rmsnorm,
    rmsnorm_apply,
    rmsnorm_stats,
    rope,
    swiglu,
    swiglu_bwd,
    take_last,
)
from tilegraph.ops.base import REGISTRY, Op, TensorType, get_op, register  # noqa: F401
