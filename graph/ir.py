"""The IR: Values produced by Nodes in an SSA Graph.

A Graph holds its inputs (data, parameters, optimizer state), its nodes in a valid order, named outputs, and
`updates`: state carried to the next step (an input value -> the output value that replaces it), which is how
one training-step Program updates parameters and optimizer moments in place.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from tilegraph.ops.base import TensorType, get_op

from tilegraph.errors import ShapeError

ROLES = ("input", "param", "state", "activation")


@dataclass(eq=False)
class Value:
    """One SSA value. Identity is by object; `name` is unique within its graph."""

    name: str
    type: TensorType
    role: str = "activation"
    producer: Node | None = field(default=None, repr=False)
    sharding: object | None = None  # set by graph.passes.shard

    @property
    def shape(self) -> tuple[int, ...]:
        return self.type.shape

    @property
    def dtype(self) -> str:
        return self.type.dtype

    def __repr__(self) -> str:
        return f"%{self.name}: {self.type}"


@dataclass(eq=False)
class Node:
    op: str
    inputs: tuple[Value, ...]
    outputs: tuple[Value, ...]
    attrs: Mapping[str, object]
    # Free-form annotations (where the node came from, what a pass learned about it), torch.fx style: every pass
    # that rebuilds a node copies its meta (`Node.rebuilt`), so what one pass records survives the pipeline.
    meta: dict[str, object] = field(default_factory=dict)

    def __repr__(self) -> str:
        return format_node(self)

    def rebuilt(self, op: str, inputs: tuple[Value, ...], outputs: tuple[Value, ...], attrs) -> Node:
        """A new node replacing this one (new op, values or attrs) that keeps its meta; sets the outputs' producer."""
        node = Node(op, tuple(inputs), tuple(outputs), attrs, dict(self.meta))
        for v in node.outputs:
            v.producer = node
        return node


def _fmt_attr(v: object) -> str:
    return f"{v:g}" if isinstance(v, float) else repr(v) if isinstance(v, str) else str(v)


def format_node(node: Node) -> str:
    outs = ", ".join(f"%{v.name}: {v.type}" for v in node.outputs)
    ins = ", ".join(f"%{v.name}" for v in node.inputs)
    attrs = ", ".join(f"{k}={_fmt_attr(v)}" for k, v in node.attrs.items())
    return f"{outs} = {node.op}({ins})" + (f" {{{attrs}}}" if attrs else "")


class Graph:
    """A dataflow graph in SSA form. Build with `input`/`param`/`state` and `call`."""

    def __init__(self, name: str = "graph"):
        self.name = name
        self.inputs: list[Value] = []
        self.nodes: list[Node] = []
        self.outputs: dict[str, Value] = {}
        self.updates: dict[Value, Value] = {}
        self._names: set[str] = set()
        self._counter = itertools.count()
        # Set by graph.passes.shard on the SPMD graph it returns (None / empty on an unsharded graph).
        self.mesh = None
        self.tp_axis: int | None = None
        self.dp_axis: int | None = None
        self.shard_notes: list[str] = []
        self.layout = "tp-dp"  # "tp-dp" or "2d" (graph/passes/shard.py LAYOUTS)

    def copy(self, nodes: list[Node] | None = None) -> Graph:
        """A new Graph over the same Values and Nodes (shallow, like torch.fx's graph copy): passes that reorder,
        drop or replace nodes edit the copy, so their input graph is unchanged. `nodes` replaces the node list."""
        g = Graph(self.name)
        g.inputs = list(self.inputs)
        g.nodes = list(self.nodes if nodes is None else nodes)
        g.outputs = dict(self.outputs)
        g.updates = dict(self.updates)
        g._names = set(self._names)
        g._counter = self._counter
        g.mesh, g.tp_axis, g.dp_axis, g.shard_notes = self.mesh, self.tp_axis, self.dp_axis, list(self.shard_notes)
        g.layout = self.layout
        return g

    # -- construction ---------------------------------------------------------------------------------
    def _unique(self, hint: str) -> str:
        name = hint
        while name in self._names:
            name = f"{hint}.{next(self._counter)}"
        self._names.add(name)
        return name

    def _add_input(self, name: str, shape, dtype: str, role: str) -> Value:
        if name in self._names:
            raise ShapeError(f"graph {self.name!r} already has a value named {name!r}")
        v = Value(self._unique(name), TensorType(tuple(shape), dtype), role)
        self.inputs.append(v)
        return v

    def input(self, name: str, shape, dtype: str = "float32") -> Value:
        """A per-step data input (token ids, targets, learning rate...)."""
        return self._add_input(name, shape, dtype, "input")

    def param(self, name: str, shape, dtype: str = "float32") -> Value:
        """A trainable parameter."""
        return self._add_input(name, shape, dtype, "param")

    def state(self, name: str, shape, dtype: str = "float32") -> Value:
        """Non-trainable state carried across steps (optimizer moments, step counter)."""
        return self._add_input(name, shape, dtype, "state")

    def call(self, op: str, *inputs: Value, name: str | None = None, **attrs) -> Value | tuple[Value, ...]:
        """Append a node; returns its single output Value, or a tuple when the op has several."""
        opdef = get_op(op)
        unknown = set(attrs) - set(opdef.attrs)
        if unknown:
            raise ShapeError(f"op {op!r} got unknown attribute(s) {sorted(unknown)}; it accepts {sorted(opdef.attrs)}")
        full = {**opdef.attrs, **attrs}
        out_types = opdef.infer([v.type for v in inputs], full)
        hint = name or op
        outs = tuple(
            Value(self._unique(hint if len(out_types) == 1 else f"{hint}.{i}"), t) for i, t in enumerate(out_types)
        )
        node = Node(op, tuple(inputs), outs, MappingProxyType(full))
        for v in outs:
            v.producer = node
        self.nodes.append(node)
        return outs[0] if len(outs) == 1 else outs

    def output(self, name: str, value: Value) -> Value:
        self.outputs[name] = value
        return value

    # -- queries ---------------------------------------------------------------------------------------
    def values(self) -> Iterator[Value]:
        yield from self.inputs
        for n in self.nodes:
            yield from n.outputs

    def params(self) -> list[Value]:
        return [v for v in self.inputs if v.role == "param"]

    def value(self, name: str) -> Value:
        for v in self.values():
            if v.name == name:
                return v
        raise KeyError(name)

    def pinned(self) -> set[Value]:
        """Values read after the last node ran: the outputs and the new values of updated state."""
        return set(self.outputs.values()) | set(self.updates.values())

    def users(self) -> dict[Value, list[Node]]:
        out: dict[Value, list[Node]] = {v: [] for v in self.values()}
        for n in self.nodes:
            for v in n.inputs:
                out[v].append(n)
        return out

    def __str__(self) -> str:
        lines = [f"graph {self.name}("]
        lines += [f"    %{v.name}: {v.type}  # {v.role}" for v in self.inputs]
        lines.append(") {")
        lines += [f"    {format_node(n)}" for n in self.nodes]
        outs = ", ".join(f"{k}=%{v.name}" for k, v in self.outputs.items())
        lines.append(f"    return {outs}")
        lines += [f"    update %{src.name} <- %{dst.name}" for src, dst in self.updates.items()]
        lines.append("}")
        return "\n".join(lines)


def last_uses(nodes: list[Node], pinned: set[Value] = frozenset()) -> dict[Value, int]:
    """Lifetimes: each value read by `nodes` -> index of its last reader; `pinned` values (read after the last
    node) -> len(nodes). A value absent from the result is never read: it is dead as soon as it is written."""
    last: dict[Value, int] = {}
    for i, node in enumerate(nodes):
        for v in node.inputs:
            last[v] = i
    for v in pinned:
        last[v] = len(nodes)
    return last
