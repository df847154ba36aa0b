"""tilegraph.ops: one module per op; importing this package registers all of them in REGISTRY."""

# Op modules are imported here so that REGISTRY is complete after `import tilegraph.ops`.
from tilegraph.ops import (  # noqa: F401
    all_gather,
    all_reduce,
    attention,
    cross_entropy,
    elementwise,
    embedding,
    linear,
    mesh_partition,
    optimizer,
    reduce_scatter,
    rmsnorm,
    rope,
    swiglu,
    swiglu_bwd,
)
from tilegraph.ops.base import REGISTRY, Op, TensorType, get_op, register  # noqa: F401
