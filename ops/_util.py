"""Small shape/dtype checks shared by the op modules (kept here so every error message has the same form)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from tilegraph.ops.base import TensorType

from tilegraph.errors import ShapeError

FLOAT_DTYPES = ("float32", "float64", "bfloat16", "bfloat8_b")
INT_DTYPES = ("int32", "int64")
DTYPE_NAMES = FLOAT_DTYPES + INT_DTYPES


def expect_arity(op: str, inputs: Sequence[TensorType], names: Sequence[str]) -> None:
    if len(inputs) != len(names):
        raise ShapeError(
            f"op {op!r} takes {len(names)} input(s) ({', '.join(names) or 'none'}) but got {len(inputs)}; "
            f"pass exactly {', '.join(names) or 'no inputs'}"
        )


def expect_float(op: str, what: str, t: TensorType) -> None:
    if t.dtype not in FLOAT_DTYPES:
        raise ShapeError(f"op {op!r}: {what} has dtype {t.dtype}; it must be a float type ({', '.join(FLOAT_DTYPES)})")


def expect_int(op: str, what: str, t: TensorType) -> None:
    if t.dtype not in INT_DTYPES:
        raise ShapeError(f"op {op!r}: {what} has dtype {t.dtype}; it must be int32 token ids")


def expect_rank(op: str, what: str, t: TensorType, rank: int, layout: str) -> None:
    if len(t.shape) != rank:
        raise ShapeError(f"op {op!r}: {what} has shape {list(t.shape)}; it must be {rank}-D {layout}")


def expect_same(op: str, what_a: str, a: TensorType, what_b: str, b: TensorType) -> None:
    if a.shape != b.shape:
        raise ShapeError(
            f"op {op!r}: {what_a} {list(a.shape)} and {what_b} {list(b.shape)} must have the same shape"
        )
    if a.dtype != b.dtype:
        raise ShapeError(f"op {op!r}: {what_a} is {a.dtype} but {what_b} is {b.dtype}; give both the same dtype")


def expect_scalar(op: str, what: str, t: TensorType) -> None:
    if t.shape != ():
        raise ShapeError(f"op {op!r}: {what} has shape {list(t.shape)}; it must be a scalar (shape [])")


def positive_int_attr(op: str, attrs: Mapping[str, object], key: str) -> int:
    v = attrs.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
        raise ShapeError(f"op {op!r}: attribute {key}={v!r} must be a positive integer; set {key}=<n>")
    return int(v)


def float_attr(op: str, attrs: Mapping[str, object], key: str) -> float:
    v = attrs.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        raise ShapeError(f"op {op!r}: attribute {key}={v!r} must be a number; set {key}=<float>")
    return float(v)


def compute_dtype(*arrays: np.ndarray) -> np.dtype:
    """The float dtype a reference computes in: the (promoted) dtype of its float inputs, float64 wins."""
    floats = [a.dtype for a in arrays if np.issubdtype(a.dtype, np.floating)]
    return np.result_type(*floats) if floats else np.dtype(np.float32)
