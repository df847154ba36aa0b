"""The IR core: values, nodes, printing and attribute checking."""

import pytest
from tilegraph.graph import Graph
from tilegraph.ops.base import TensorType

from tilegraph.errors import ShapeError


def test_tensor_type_bytes():
    assert TensorType((2, 3), "float32").nbytes == 24
    assert TensorType((4,), "bfloat16").nbytes == 8
    with pytest.raises(ShapeError, match="unknown dtype"):
        TensorType((1,), "float8")


def test_input_names_are_unique():
    g = Graph("g")
    g.param("w", (2, 2))
    with pytest.raises(ShapeError, match="already has a value named 'w'"):
        g.param("w", (2, 2))
    assert [v.role for v in g.inputs] == ["param"]
    assert "%w: float32[2,2]  # param" in str(g)


def test_unknown_op_is_named():
    g = Graph("g")
    x = g.input("x", (2,))
    with pytest.raises(ShapeError, match="unknown op 'nope'"):
        g.call("nope", x)
