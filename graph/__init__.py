"""tilegraph.graph: the IR, spec -> graph, autodiff, and passes/ (one module per pass)."""

from tilegraph.graph.ir import Graph, Node, Value, format_node  # noqa: F401
