"""tt-metal's own kernels as a peer suite: unmodified kernel sources from the installed ttnn 0.81.1 wheel run in the
emulator and match numpy.

Kernels (paths as tt-metal's program factories name them in CreateKernel; in the wheel under site-packages/ttnn/):
- eltwise binary: compute `.../eltwise/binary/device/kernels/compute/eltwise_binary_kernel.cpp`, reader
  `.../eltwise/binary/device/kernels/dataflow/reader_binary_interleaved_start_id.cpp`, writer
  `.../eltwise/unary/device/kernels/dataflow/writer_unary_interleaved_start_id.cpp`;
- eltwise SFPU (unary): compute `.../eltwise/unary/device/kernels/compute/eltwise_sfpu.cpp`, reader
  `.../eltwise/unary/device/kernels/dataflow/reader_unary_interleaved_start_id.cpp`, the same writer.

The program descriptions follow tt-metal's program factories for interleaved DRAM tensors (binary:
ElementWiseMultiCore, element_wise_multi_core_program_factory.cpp; unary: UnaryProgramFactory,
unary_program_factory.cpp): CB indices c_0/c_1 inputs and c_2 output of 2 tiles each (c_3/c_4 one-tile interim CBs
when an input is pre-scaled by an SFPU op), the reader's compile-time args [block_or_width_sharded = 0,
TensorAccessorArgs(a), TensorAccessorArgs(b)], the writer's [c_2, TensorAccessorArgs(out)], the defines of
binary_op_utils::get_defines / unary_op_utils::get_block_defines (ELTWISE_OP, ELTWISE_OP_TYPE, SFPU_OP_CHAIN_0 with
its _INIT_i/_FUNC_i parts and the SFPU_OP_*_INCLUDE switches, SFPU_OP_INIT_PRE_IN0_0...), split_work_to_cores,
and the per-core runtime args, including the binary factory's zero args on idle cores of the grid. The emulator's
compatibility shims for these kernels (DataflowBuffer, the Noc object API, tt::CBIndex, get_local_cb_interface)
live in kernels/emu only.

Tolerances: the emulator is meant to compute what a Wormhole computes, and the datapath numerics are being made
bit-faithful separately, so each bound below covers the hardware's arithmetic, not only today's emulator:
- bfloat16 tensors (DST in bf16): add/sub align both operands to the larger exponent (bits shifted out are lost)
  and the result lands in a bf16 DST: |err| <= 2^-7 * max(|a|, |b|, |out|) (one bf16 ulp, 8 significant bits).
  mul (ELWMUL) adds one partial product per fidelity phase into DST (HiFi4: 4 phases), each rounded into the bf16
  DST: |err| <= 4 * 2^-8 = 2^-6 of |out|.
- float32 tensors (fp32_dest_acc_en): the unpacker feeds fp32 operands to the FPU as TF32 (10 explicit mantissa bits,
  truncated: relative error < 2^-10 per operand), so |err| <= 2^-9 * (|a| + |b|) for add/sub; mul also loses the
  last of SrcA's 11 mantissa bits (its fidelity slices are 5 + 5 bits), so |err| <= 3 * 2^-10 < 2^-8 of |a*b|.
- bfloat8_b: the packer shares one exponent per 16 elements of a face row (7 mantissa bits): |err| <= one unit
  (2^(e_max - 6)) of the group's largest element, plus the bf16 bound of the computation.
- SFPU chains state their bound next to the chain.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tilegraph.kernels import ttnn_kernel_path
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
from tilegraph.runtime.emulator import quantize, run_program

from tilegraph.errors import KernelError

OPS = "ttnn/cpp/ttnn/operations/eltwise"
BINARY_COMPUTE = f"{OPS}/binary/device/kernels/compute/eltwise_binary_kernel.cpp"
BINARY_READER = f"{OPS}/binary/device/kernels/dataflow/reader_binary_interleaved_start_id.cpp"
UNARY_COMPUTE = f"{OPS}/unary/device/kernels/compute/eltwise_sfpu.cpp"
UNARY_READER = f"{OPS}/unary/device/kernels/dataflow/reader_unary_interleaved_start_id.cpp"
UNARY_WRITER = f"{OPS}/unary/device/kernels/dataflow/writer_unary_interleaved_start_id.cpp"
ALL_KERNELS = (BINARY_COMPUTE, BINARY_READER, UNARY_COMPUTE, UNARY_READER, UNARY_WRITER)

_missing = [k for k in ALL_KERNELS if ttnn_kernel_path(k) is None]
pytestmark = pytest.mark.skipif(
    bool(_missing), reason=f"tt-metal kernel sources of the ttnn wheel not installed (missing {_missing[:1]})")

FUZZ = settings(max_examples=6, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])
C_IN0, C_IN1, C_OUT, C_INTERIM0, C_INTERIM1 = 0, 1, 2, 3, 4  # tt::CBIndex values the factories use


def source(path: str) -> str:
    return str(ttnn_kernel_path(path))


# ---------------------------------------------------------------- what the program factories compute on the host
def split_work_to_cores(grid: tuple[int, int], units: int) -> tuple[int, int, int, int]:
    """tt-metal's split_work_to_cores for a full grid: (num_cores, cores in group 1, units per group-1 core, units per
    group-2 core). Up to all cores take part; the first `units % num_cores` cores take one unit more."""
    num_cores = min(units, grid[0] * grid[1])
    base, extra = divmod(units, num_cores)
    if extra == 0:
        return num_cores, num_cores, base, 0
    return num_cores, extra, base + 1, base


def chain_defines(ops: list[tuple[str, str, str]], block: str = "0") -> dict[str, str]:
    """unary_op_utils::get_block_defines: SFPU_OP_CHAIN_<block> = "<INIT_0> <FUNC_0> <INIT_1> ...", each part
    its own define, and each op's SFPU_OP_*_INCLUDE switch set to 1. `ops`: (init, func, include macro)."""
    defines, chain = {}, ""
    for i, (init, func, include) in enumerate(ops):
        init_def, func_def = f"SFPU_OP_CHAIN_{block}_INIT_{i}", f"SFPU_OP_CHAIN_{block}_FUNC_{i}"
        chain += f"{init_def} {func_def} "
        defines.update({init_def: init, func_def: func, include: "1"})
    defines[f"SFPU_OP_CHAIN_{block}"] = chain
    return defines


def f32_bits(x: float) -> str:
    return f"{np.float32(x).view(np.uint32):#x}u"


BINARY_OPS = {  # binary_op_utils::get_defines: ELTWISE_OP and ELTWISE_OP_TYPE per BinaryOpType
    "add": ("add_tiles", "EltwiseBinaryType::ELWADD"),
    "sub": ("sub_tiles", "EltwiseBinaryType::ELWSUB"),
    "mul": ("mul_tiles", "EltwiseBinaryType::ELWMUL"),
}


def binary_program(op: str, shape, dtype: str, grid=(2, 2), extra_defines=None) -> ProgramDescription:
    """ElementWiseMultiCore for interleaved a, b, out: kernels on every core of the grid, work split row-major,
    idle cores get all-zero runtime args (as the factory's zero-initialised arg vectors)."""
    a, b, out = TensorSpec("a", shape, dtype), TensorSpec("b", shape, dtype), TensorSpec("out", shape, dtype, "output")
    num_cores, g1, per1, per2 = split_work_to_cores(grid, a.num_pages)
    all_cores = (CoreRange((0, 0), (grid[0] - 1, grid[1] - 1)),)
    cores = [(x, y) for y in range(grid[1]) for x in range(grid[0])]  # grid_to_cores(row_major=true)
    reader, compute, writer, start = {}, {}, {}, 0
    for i, core in enumerate(cores):
        n = per1 if i < g1 else per2 if i < num_cores else 0
        if n == 0:
            reader[core], compute[core], writer[core] = (0,) * 7, (0, 0), (0, 0, 0)
            continue
        # reader: src0, src1, num_tiles, start_id, block_height, block_width, num_cores_y (0: not sharded)
        reader[core] = (BufferAddress("a"), BufferAddress("b"), n, start, 0, 0, 0)
        compute[core] = (n, 1)  # per_core_block_cnt, per_core_block_size (max_block_size = 1 when interleaved)
        writer[core] = (BufferAddress("out"), n, start)
        start += n
    name, op_type = BINARY_OPS[op]
    defines = {"ELTWISE_OP": name, "ELTWISE_OP_TYPE": op_type, **(extra_defines or {})}
    cbs = [CBSpec(C_IN0, dtype, 2, all_cores), CBSpec(C_IN1, dtype, 2, all_cores), CBSpec(C_OUT, dtype, 2, all_cores)]
    if "SFPU_OP_INIT_PRE_IN0_0" in defines:
        cbs.append(CBSpec(C_INTERIM0, dtype, 1, all_cores))
    if "SFPU_OP_INIT_PRE_IN1_0" in defines:
        cbs.append(CBSpec(C_INTERIM1, dtype, 1, all_cores))
    return ProgramDescription(
        name=f"ttmetal_eltwise_binary_{op}",
        tensors=[a, b, out],
        cbs=cbs,
        kernels=[
            KernelSpec("reader", source(BINARY_READER), all_cores,
                       (0, TensorAccessorCTA("a"), TensorAccessorCTA("b")), runtime_args=reader),
            KernelSpec("compute", source(BINARY_COMPUTE), all_cores, defines=defines, runtime_args=compute),
            KernelSpec("writer", source(UNARY_WRITER), all_cores, (C_OUT, TensorAccessorCTA("out")),
                       runtime_args=writer),
        ],
        # the factory sets fp32_dest_acc_en for a float32 (or 32-bit integer) output; math fidelity stays HiFi4
        compute_config=ComputeConfig(fp32_dest_acc_en=dtype == "float32"),
        grid=grid,
    )


def unary_program(chain: list[tuple[str, str, str]], shape, dtype: str, grid=(2, 2)) -> ProgramDescription:
    """UnaryProgramFactory for interleaved input/output: cores numbered column-major ({i / num_cores_y,
    i % num_cores_y}), kernels only on the working cores; eltwise_sfpu.cpp takes its tile count as runtime arg 0."""
    x, out = TensorSpec("x", shape, dtype), TensorSpec("out", shape, dtype, "output")
    num_cores, g1, per1, per2 = split_work_to_cores(grid, x.num_pages)
    cores = [(i // grid[1], i % grid[1]) for i in range(num_cores)]
    ranges = tuple(CoreRange(c, c) for c in cores)
    reader, compute, writer, start = {}, {}, {}, 0
    for i, core in enumerate(cores):
        n = per1 if i < g1 else per2
        reader[core], compute[core], writer[core] = (BufferAddress("x"), n, start), (n,), (BufferAddress("out"), n, start)
        start += n
    defines = chain_defines(chain)
    defines["INP_FLOAT32" if dtype == "float32" else "INP_FLOAT"] = "1"
    return ProgramDescription(
        name="ttmetal_eltwise_sfpu",
        tensors=[x, out],
        cbs=[CBSpec(C_IN0, dtype, 2, ranges), CBSpec(C_OUT, dtype, 2, ranges)],
        kernels=[
            KernelSpec("reader", source(UNARY_READER), ranges, (TensorAccessorCTA("x"),), runtime_args=reader),
            KernelSpec("compute", source(UNARY_COMPUTE), ranges, defines=defines, runtime_args=compute),
            KernelSpec("writer", source(UNARY_WRITER), ranges, (C_OUT, TensorAccessorCTA("out")), runtime_args=writer),
        ],
        compute_config=ComputeConfig(fp32_dest_acc_en=dtype == "float32", math_fidelity="HiFi4"),
        grid=grid,
    )


# ---------------------------------------------------------------- references and bounds
def values(seed: int, shape, scale: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    flat = x.reshape(-1)
    flat[: min(4, flat.size)] = [0.0, -0.0, scale, -scale][: min(4, flat.size)]  # signed zeros and exact values
    return x


def bfp8_group_unit(ref: np.ndarray) -> np.ndarray:
    """One bfloat8_b mantissa unit per element: 2^(exponent of its 16-element face-row group's max - 6)."""
    *lead, h, w = ref.shape
    groups = np.abs(ref).reshape(*lead, h, w // 16, 16).max(axis=-1, keepdims=True)
    unit = np.where(groups > 0, np.exp2(np.floor(np.log2(np.maximum(groups, 1e-38))) - 6), 0.0)
    return np.broadcast_to(unit, (*lead, h, w // 16, 16)).reshape(ref.shape)


def binary_bound(op: str, a, b, ref, dtype: str) -> np.ndarray:
    if dtype == "float32":
        return 2.0**-8 * np.abs(a * b) if op == "mul" else 2.0**-9 * (np.abs(a) + np.abs(b))
    bound = 2.0**-7 * np.maximum.reduce([np.abs(a), np.abs(b), np.abs(ref)]) if op != "mul" else 2.0**-6 * np.abs(ref)
    return bound + (bfp8_group_unit(ref) if dtype == "bfloat8_b" else 0.0)


SHAPES = [(32, 32), (64, 96), (2, 64, 64), (40, 50)]  # 1, 6, 8 tiles; 40x50 pads to 2x2 tiles


# ---------------------------------------------------------------- eltwise binary
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize("op", ["add", "sub", "mul"])
@FUZZ
@given(seed=st.integers(0, 2**31 - 1), shape=st.sampled_from(SHAPES))
def test_ttmetal_eltwise_binary_matches_numpy(op, dtype, seed, shape):
    a = quantize(values(seed, shape, 3.0), dtype)
    b = quantize(values(seed + 1, shape, 3.0), dtype)
    ref = {"add": a + b, "sub": a - b, "mul": a * b}[op]
    out = run_program(binary_program(op, shape, dtype), {"a": a, "b": b})["out"]
    err = np.abs(out.astype(np.float64) - ref)
    bound = binary_bound(op, a, b, ref, dtype)
    assert np.all(err <= bound), f"{op} {dtype} {shape}: worst err/bound {np.max(err / np.maximum(bound, 1e-30)):.3g}"


def test_ttmetal_eltwise_binary_bfloat8_b_add():
    shape = (64, 128)
    a = quantize(values(7, shape, 2.0), "bfloat8_b")
    b = quantize(values(8, shape, 2.0), "bfloat8_b")
    out = run_program(binary_program("add", shape, "bfloat8_b"), {"a": a, "b": b})["out"]
    ref = a + b
    assert np.all(np.abs(out - ref) <= binary_bound("add", a, b, ref, "bfloat8_b"))


def test_ttmetal_eltwise_binary_uneven_split_and_idle_cores():
    """5 tiles over a 2x3 grid: one idle core runs all three kernels with zero args (num_tiles = 0), as in the
    factory; wrong start ids or counts would leave tiles unwritten or written twice."""
    shape = (32, 160)
    a = quantize(values(3, shape, 1.0), "bfloat16")
    b = quantize(values(4, shape, 1.0), "bfloat16")
    desc = binary_program("sub", shape, "bfloat16", grid=(2, 3))
    assert sum(1 for args in desc.kernels[2].runtime_args.values() if args[1] == 0) == 1
    out = run_program(desc, {"a": a, "b": b})["out"]
    assert np.all(np.abs(out - (a - b)) <= binary_bound("sub", a, b, a - b, "bfloat16"))


def test_ttmetal_eltwise_binary_fused_relu_chain():
    """mul with a fused RELU activation: get_block_defines puts the SFPU chain after the FPU op, on DST index i."""
    shape = (64, 64)
    a = quantize(values(11, shape, 2.0), "bfloat16")
    b = quantize(values(12, shape, 2.0), "bfloat16")
    defines = chain_defines([("relu_tile_init();", "relu_tile(i);", "SFPU_OP_RELU_FAMILY_INCLUDE")])
    out = run_program(binary_program("mul", shape, "bfloat16", extra_defines=defines), {"a": a, "b": b})["out"]
    ref = np.maximum(a * b, 0)
    assert np.all(out >= 0) and np.any(a * b < 0)
    assert np.all(np.abs(out - ref) <= binary_bound("mul", a, b, ref, "bfloat16"))  # relu is exact


def test_ttmetal_eltwise_binary_logaddexp_prescale_path():
    """BinaryOpType::LOGADDEXP: each input is pre-scaled by exp into its interim CB (c_3, c_4), then added, then
    log (SFPU_OP_INIT_0/FUNC_0). Exercises the kernel's SFPU_OP_INIT_PRE_IN0_0 / PRE_IN1_0 path with its
    reconfig_data_format_srca / pack_reconfig_data_format calls.
    Bound: exp into bf16 (<= 2^-8 relative each, plus the SFPU's own error of the same order), the bf16 sum (2^-8),
    so log's argument is off by <= ~3 * 2^-8 relative, i.e. an absolute error <= 2^-6 in log; then the bf16 result
    rounding, 2^-8 * |ref|, and the same again for the SFPU log."""
    shape = (64, 64)
    a = quantize(values(21, shape, 1.5), "bfloat16")
    b = quantize(values(22, shape, 1.5), "bfloat16")
    defines = {
        "SFPU_OP_INIT_PRE_IN0_0": "exp_tile_init<0u>();", "SFPU_OP_FUNC_PRE_IN0_0": "exp_tile<0u>(0);",
        "SFPU_OP_INIT_PRE_IN1_0": "exp_tile_init<0u>();", "SFPU_OP_FUNC_PRE_IN1_0": "exp_tile<0u>(0);",
        "SFPU_OP_EXP_INCLUDE": "1",
        "SFPU_OP_INIT_0": "log_tile_init();", "SFPU_OP_FUNC_0": "log_tile(i);", "SFPU_OP_COMPUTE_KERNEL_API_INCLUDE": "1",
    }
    out = run_program(binary_program("add", shape, "bfloat16", extra_defines=defines), {"a": a, "b": b})["out"]
    ref = np.logaddexp(a.astype(np.float64), b.astype(np.float64))
    assert np.all(np.abs(out - ref) <= 2.0**-6 + 2.0**-7 * np.abs(ref))


# ---------------------------------------------------------------- eltwise SFPU (unary)
# x -> -exp(2x): binop_with_scalar mul by 2.0 (exact), exp with approx = 0 (the factory's get_op_init_and_func for
# EXP with param 0), negative (exact). Bound: bf16: DST rounding after exp (2^-8 relative) plus the SFPU exp's error
# (at most as much again) -> 2^-7 * |ref|. float32: the input reaches DST through srcA as TF32 unless unpack-to-dest
# is set (< 2^-10 relative truncation, which exp turns into 2^-10 * |2x| relative), plus 2^-12 for the fp32 SFPU exp.
CHAIN = [
    ("binop_with_scalar_tile_init();", f"mul_unary_tile(0, {f32_bits(2.0)});", "SFPU_OP_BINOP_WITH_SCALAR_INCLUDE"),
    ("exp_tile_init<0u>();", "exp_tile<0u>(0);", "SFPU_OP_EXP_INCLUDE"),
    ("negative_tile_init();", "negative_tile(0);", "SFPU_OP_NEG_INCLUDE"),
]


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
@FUZZ
@given(seed=st.integers(0, 2**31 - 1), shape=st.sampled_from(SHAPES))
def test_ttmetal_eltwise_sfpu_chain_matches_numpy(dtype, seed, shape):
    x = quantize(np.clip(values(seed, shape, 1.5), -4, 4), dtype)
    out = run_program(unary_program(CHAIN, shape, dtype), {"x": x})["out"]
    ref = -np.exp(2.0 * x.astype(np.float64))
    rel = 2.0**-7 if dtype == "bfloat16" else 2.0**-10 * np.abs(2 * x) + 2.0**-12
    bound = rel * np.abs(ref)
    err = np.abs(out - ref)
    assert np.all(err <= bound), f"{dtype} {shape}: worst err/bound {np.max(err / bound):.3g}"


def test_ttmetal_eltwise_sfpu_single_ops():
    """One op per program: relu, abs, sqrt (default get_op_init_and_func strings), each against numpy."""
    shape = (64, 64)
    x = quantize(values(5, shape, 2.0), "bfloat16")
    cases = {
        "relu": (("relu_tile_init();", "        relu_tile(0);", "SFPU_OP_RELU_FAMILY_INCLUDE"), np.maximum(x, 0)),
        "abs": (("abs_tile_init();", "abs_tile(0);", "SFPU_OP_COMPUTE_KERNEL_API_INCLUDE"), np.abs(x)),
        "square": (("square_tile_init();", "square_tile(0);", "SFPU_OP_COMPUTE_KERNEL_API_INCLUDE"), x * x),
    }
    for name, (op, ref) in cases.items():
        out = run_program(unary_program([op], shape, "bfloat16", grid=(1, 3)), {"x": x})["out"]
        assert np.all(np.abs(out - ref) <= 2.0**-8 * np.abs(ref)), name


def test_ttmetal_kernel_misuse_is_caught_through_the_shims():
    """The DataflowBuffer / Noc shims go through the emulator's CB and NoC checks: a writer told to write one tile
    more than the compute kernel produces blocks in DataflowBuffer::wait_front, reported as a deadlock naming the
    wheel's writer kernel, its core and CB c_2."""
    shape = (32, 64)
    x = quantize(values(9, shape, 1.0), "bfloat16")
    desc = unary_program([("abs_tile_init();", "abs_tile(0);", "SFPU_OP_COMPUTE_KERNEL_API_INCLUDE")], shape,
                         "bfloat16", grid=(1, 1))
    writer = desc.kernels[2]
    (core, (addr, n, start)), = writer.runtime_args.items()
    bad = KernelSpec("writer", writer.source, writer.core_ranges, writer.compile_time_args,
                     runtime_args={core: (addr, n + 1, start)})
    desc = ProgramDescription(desc.name, desc.tensors, desc.cbs, [*desc.kernels[:2], bad], desc.compute_config,
                              desc.grid)
    with pytest.raises(KernelError) as e:
        run_program(desc, {"x": x}, timeout_s=20)
    msg = str(e.value)
    assert "deadlock" in msg and "writer_unary_interleaved_start_id.cpp (writer) on core (0,0)" in msg
    assert "cb_wait_front(2, 1)" in msg


def test_ttmetal_eltwise_sfpu_runs_the_llk_algorithms():
    """tt-metal's SFPU kernel on bf16 tensors goes through the emulator's model of the LLK (kernels/emu/src/sfpu.cpp),
    not libm: with a bf16 DST the input is exact in DST and each LLK result is already bf16 before the store and the
    pack, so the output equals the lane model bit for bit (exp: the exp_21f TTI path; recip: the bf16-rounding
    Newton step, which also rounds every normal bf16 input correctly)."""
    from test_emu_sfpu import rne_bf16, sfpu  # tests/ is on sys.path (pytest's rootdir-less import mode)

    shape = (64, 64)
    x = quantize(np.clip(values(31, shape, 3.0), -60, 60), "bfloat16")
    exp_op = ("exp_tile_init<0u>();", "exp_tile<0u>(0);", "SFPU_OP_EXP_INCLUDE")
    out = run_program(unary_program([exp_op], shape, "bfloat16", grid=(1, 2)), {"x": x})["out"]
    np.testing.assert_array_equal(out.view(np.uint32), sfpu("exp", x.ravel(), fp32=False).reshape(shape).view(np.uint32))
    assert np.any(out != rne_bf16(np.exp(x.astype(np.float64))))  # exp_21f is not correctly rounded: not libm
    x = np.where(x == 0, 1.0, x).astype(np.float32)
    recip_op = ("recip_tile_init();", "recip_tile(0);", "SFPU_OP_RECIP_INCLUDE")
    out = run_program(unary_program([recip_op], shape, "bfloat16", grid=(1, 2)), {"x": x})["out"]
    np.testing.assert_array_equal(out.view(np.uint32), rne_bf16(1 / x.astype(np.float64)).view(np.uint32))
