"""tilegraph.ops: one module per op; importing this package registers all of them in REGISTRY."""

# Op modules are imported here so that REGISTRY is complete after `import tilegraph.ops`.
from tilegraph.ops import (  # noqa: F401
    all_gather,
    all_reduce,
    attention,
    attention_decode,
    cross_entropy,
    elementwise,
    embedding,
    kv_cache_write,
    linear,
    mesh_partition,
    optimizer,
    reduce_scatter,
    rmsnorm,
    rmsnorm_apply,
    rmsnorm_stats,
    rope,
    swiglu,
    take_last,
)
from tilegraph.ops.base import REGISTRY, Op, TensorType, get_op, register  # noqa: F401
