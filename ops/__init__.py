"""tilegraph.ops: one module per op; importing this package registers all of them in REGISTRY."""

from tilegraph.ops.base import REGISTRY, Op, TensorType, get_op, register  # noqa: F401

# Op modules are imported here so that REGISTRY is complete after `import tilegraph.ops`.
