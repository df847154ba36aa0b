"""tilegraph.graph: the IR, spec -> graph, autodiff, and passes/ (one module per pass)."""

from tilegraph.graph.autodiff import AdamWConfig, autodiff, training_step  # noqa: F401
from tilegraph.graph.build import build, init_params, param_shapes  # noqa: F401
from tilegraph.graph.ir import Graph, Node, Value, format_node  # noqa: F401
from tilegraph.graph.spec import ModelSpec, load_spec  # noqa: F401
