"""verify: check that a Graph is well-formed SSA with consistent types. Graph -> Graph (returned unchanged).

Checks: every value is defined once and has a unique name; every node input is a graph input or was produced by an
earlier node; each node's recorded output types equal what its op infers now; outputs and updates name values of
the graph; an update replaces a param/state input with a value of the same type.
"""

from __future__ import annotations

from tilegraph.graph.ir import Graph, format_node
from tilegraph.ops import get_op

from tilegraph.errors import ShapeError


def verify(graph: Graph) -> Graph:
    defined = set()
    names: dict[str, object] = {}

    def define(v, where: str) -> None:
        if v in defined:
            raise ShapeError(f"graph {graph.name!r}: value %{v.name} is defined twice ({where})")
        if v.name in names:
            raise ShapeError(f"graph {graph.name!r}: two values are named %{v.name} ({where}); names must be unique")
        defined.add(v)
        names[v.name] = v

    for v in graph.inputs:
        if v.producer is not None:
            raise ShapeError(f"graph {graph.name!r}: input %{v.name} has a producer node; inputs are not computed")
        define(v, "graph input")
    for node in graph.nodes:
        for v in node.inputs:
            if v not in defined:
                raise ShapeError(
                    f"graph {graph.name!r}: node `{format_node(node)}` uses %{v.name} before it is defined; "
                    f"run schedule() or fix the builder"
                )
        inferred = get_op(node.op).infer([v.type for v in node.inputs], node.attrs)
        recorded = [v.type for v in node.outputs]
        if list(inferred) != recorded:
            raise ShapeError(
                f"graph {graph.name!r}: node `{format_node(node)}` records output types "
                f"{[str(t) for t in recorded]} but op {node.op!r} infers {[str(t) for t in inferred]}"
            )
        for v in node.outputs:
            if v.producer is not node:
                raise ShapeError(f"graph {graph.name!r}: %{v.name} does not point back to the node that produces it")
            define(v, f"output of {node.op}")
    for key, v in graph.outputs.items():
        if v not in defined:
            raise ShapeError(f"graph {graph.name!r}: output {key!r} is %{v.name}, which is not a value of this graph")
    for src, dst in graph.updates.items():
        if src not in defined or src.role not in ("param", "state"):
            raise ShapeError(f"graph {graph.name!r}: update target %{src.name} must be a param or state input")
        if dst not in defined:
            raise ShapeError(f"graph {graph.name!r}: update of %{src.name} comes from %{dst.name}, not in this graph")
        if dst.type != src.type:
            raise ShapeError(f"graph {graph.name!r}: update %{src.name}: {src.type} <- %{dst.name}: {dst.type} changes type")
    return graph
