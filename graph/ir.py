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

    def __repr__(self) -> str:
        return format_node(self)


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
