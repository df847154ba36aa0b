"""Tile-op semantics of the emulator against numpy: one op per core (tests/kernels/tileops/compute.cpp), float32
tensors and CBs, fp32 DST accumulation.

The reference takes the inputs as the source registers hold them: float32 CBs unpack to TF32 by truncation with
fp32_dest_acc_en (datapath.h), so numpy sees a and b truncated to 10 mantissa bits. What remains is the matrix
engine's arithmetic at HiFi4: SrcA's last mantissa bit is dropped (2^-10 relative on in1) and products are aligned
to the largest exponent of each group of 8 with 12-bit slices, so an output is bounded by 2^-10 times the same
expression on absolute values (+1% slack for fp32 accumulation). SFPU ops act on those (TF32) DST values and are
evaluated in fp32: 1e-6 relative. MAX pooling takes a scaler of exactly 1.0 (GMPOOL requires it).
"""

from pathlib import Path

import numpy as np
import pytest
from tilegraph.kernels.description import (
    BufferAddress,
    CBSpec,
    ComputeConfig,
    CoreRange,
    KernelSpec,
    ProgramDescription,
    TensorAccessorCTA,
    TensorSpec,
)
from tilegraph.runtime.emulator import run_program

KERNELS = Path(__file__).parent / "kernels"
OPS = ["MATMUL", "MATMUL_BT", "ADD_BCAST_COLS", "MUL_BCAST_ROWS", "SUB_BCAST_SCALAR", "REDUCE_ROW_SUM",
       "REDUCE_ROW_MAX", "REDUCE_COL_SUM", "TRANSPOSE", "EXP", "RECIP", "SQRT", "RSQRT", "SILU", "MAX",
       "MATMUL_TWICE", "FILL_AFTER_REDUCE", "FILL_AFTER_REDUCE_UNINIT", "REDUCE_SCALAR_SUM"]
TF32 = 2.0 ** -10 * 1.01
SCALER = 0.5


def tileops_program() -> ProgramDescription:
    n = len(OPS)
    cores = [(i % 8, i // 8) for i in range(n)]
    rng = tuple(CoreRange((0, y), (min(7, n - 1 - 8 * y), y)) for y in range((n + 7) // 8))
    shape = (32 * n, 32)
    return ProgramDescription(
        name="tileops",
        tensors=[TensorSpec("a", shape, "float32"), TensorSpec("b", shape, "float32"),
                 TensorSpec("out", shape, "float32", "output")],
        cbs=[CBSpec(i, "float32", 1, rng) for i in (0, 1, 16)],
        kernels=[
            KernelSpec("reader", str(KERNELS / "eltwise" / "reader.cpp"), rng,
                       (TensorAccessorCTA("a"), TensorAccessorCTA("b")),
                       runtime_args={c: (BufferAddress("a"), BufferAddress("b"), i, 1) for i, c in enumerate(cores)}),
            KernelSpec("compute", str(KERNELS / "tileops" / "compute.cpp"), rng,
                       runtime_args={c: (i,) for i, c in enumerate(cores)}),
            KernelSpec("writer", str(KERNELS / "eltwise" / "writer.cpp"), rng, (TensorAccessorCTA("out"),),
                       runtime_args={c: (BufferAddress("out"), i, 1) for i, c in enumerate(cores)}),
        ],
        compute_config=ComputeConfig(fp32_dest_acc_en=True),
    )


@pytest.fixture(scope="module")
def results():
    rng = np.random.default_rng(7)
    n = len(OPS)
    a = rng.standard_normal((n, 32, 32)).astype(np.float32)
    b = rng.standard_normal((n, 32, 32)).astype(np.float32)
    for op in ("RECIP", "SQRT", "RSQRT"):
        a[OPS.index(op)] = np.abs(a[OPS.index(op)]) + 0.25
    for op in ("REDUCE_ROW_SUM", "REDUCE_ROW_MAX", "REDUCE_COL_SUM", "FILL_AFTER_REDUCE", "FILL_AFTER_REDUCE_UNINIT",
               "REDUCE_SCALAR_SUM"):
        s = np.zeros((32, 32), np.float32)  # tt-metal's scaler tile: the value in row 0 of each face
        s[0, :] = s[16, :] = 1.0 if op == "REDUCE_ROW_MAX" else SCALER
        b[OPS.index(op)] = s
    out = run_program(tileops_program(), {"a": a.reshape(-1, 32), "b": b.reshape(-1, 32)})["out"]
    return tf32(a).astype(np.float64), tf32(b).astype(np.float64), out.reshape(n, 32, 32)


def tf32(x: np.ndarray) -> np.ndarray:
    """float32 truncated to TF32 (the unpacker's float32 -> Tf32 conversion)."""
    return (x.view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32)


def expected(op, a, b):
    """(value, error bound) in float64."""
    aa, ab = np.abs(a), np.abs(b)
    z = np.zeros_like(a)
    if op == "MATMUL":
        return a @ b, TF32 * (aa @ ab)
    if op == "MATMUL_TWICE":
        return 2 * (a @ b), 2 * TF32 * (aa @ ab)
    if op == "MATMUL_BT":
        return a @ b.T, TF32 * (aa @ ab.T)
    if op == "ADD_BCAST_COLS":
        return a + b[:, :1], TF32 * (aa + ab[:, :1])
    if op == "MUL_BCAST_ROWS":
        return a * b[:1, :], TF32 * aa * ab[:1, :]
    if op == "SUB_BCAST_SCALAR":
        return a - b[0, 0], TF32 * (aa + ab[0, 0])
    if op == "REDUCE_ROW_SUM":
        v = z.copy()
        v[:, 0] = (a * SCALER).sum(1)
        e = z.copy()
        e[:, 0] = TF32 * (aa * SCALER).sum(1)
        return v, e
    if op == "REDUCE_ROW_MAX":
        v = z.copy()
        v[:, 0] = a.max(1)
        return v, z
    if op == "REDUCE_COL_SUM":
        v = z.copy()
        v[0, :] = (a * SCALER).sum(0)
        e = z.copy()
        e[0, :] = TF32 * (aa * SCALER).sum(0)
        return v, e
    if op == "REDUCE_SCALAR_SUM":  # a row pass and a column pass, each applying the scaler
        v, e = z.copy(), z.copy()
        v[0, 0] = (a * SCALER * SCALER).sum()
        e[0, 0] = TF32 * (aa * SCALER * SCALER).sum()
        return v, e
    if op == "FILL_AFTER_REDUCE":  # reduce_init's packer masks still apply: only column 0 is packed
        v = z.copy()
        v[:, 0] = 2.0
        return v, z
    if op == "FILL_AFTER_REDUCE_UNINIT":
        return np.full_like(a, 2.0), z
    if op == "TRANSPOSE":
        return a.T, TF32 * aa.T
    if op == "MAX":
        return np.maximum(a, b), z
    f = {"EXP": np.exp, "RECIP": lambda x: 1 / x, "SQRT": np.sqrt, "RSQRT": lambda x: 1 / np.sqrt(x),
         "SILU": lambda x: x / (1 + np.exp(-x))}[op]
    v = f(a)
    return v, 1e-6 * np.abs(v) + 1e-30


@pytest.mark.parametrize("op", OPS)
def test_tile_op_matches_numpy(results, op):
    a, b, out = results
    i = OPS.index(op)
    want, bound = expected(op, a[i], b[i])
    err = np.abs(out[i] - want)
    worst = np.unravel_index(np.argmax(err - bound), err.shape)
    assert np.all(err <= bound), f"{op}: error {err[worst]:.3g} > bound {bound[worst]:.3g} at {worst}"
