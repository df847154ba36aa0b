"""The emulator holds the unpacker / math / packer configuration as a Wormhole does, and an op whose operands do not
match it is a KernelError naming kernel, core, CB, op and both formats. One planted bug kernel per check, each
asserting the exact message; the unplanted kernels compute the right answer (so the checks do not reject good code).
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from tilegraph.kernels import KERNEL_DIR
from tilegraph.kernels.attention.program import (
    attention_device_inputs,
    attention_device_outputs,
    attention_program,
)
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

from tilegraph.errors import KernelError

TESTS_KERNELS = Path(__file__).parent / "kernels"
CORE = (CoreRange((0, 0), (0, 0)),)


def config_program(defines: dict, unpack_to_dest_fp32=()) -> ProgramDescription:
    """out (float32) = a (bfloat16) + b (float32), one tile on core (0,0), compute kernel config_state/compute.cpp."""
    return ProgramDescription(
        name="config_state",
        tensors=[TensorSpec("a", (32, 32), "bfloat16"), TensorSpec("b", (32, 32), "float32"),
                 TensorSpec("out", (32, 32), "float32", "output")],
        cbs=[CBSpec(0, "bfloat16", 1, CORE), CBSpec(1, "float32", 1, CORE), CBSpec(16, "float32", 1, CORE)],
        kernels=[
            KernelSpec("reader", str(TESTS_KERNELS / "eltwise" / "reader.cpp"), CORE,
                       (TensorAccessorCTA("a"), TensorAccessorCTA("b")),
                       runtime_args={(0, 0): (BufferAddress("a"), BufferAddress("b"), 0, 1)}),
            KernelSpec("compute", str(TESTS_KERNELS / "config_state" / "compute.cpp"), CORE, defines=defines),
            KernelSpec("writer", str(TESTS_KERNELS / "eltwise" / "writer.cpp"), CORE, (TensorAccessorCTA("out"),),
                       runtime_args={(0, 0): (BufferAddress("out"), 0, 1)}),
        ],
        compute_config=ComputeConfig(fp32_dest_acc_en=True, unpack_to_dest_fp32=tuple(unpack_to_dest_fp32)),
        grid=(1, 1),
    )


def config_inputs():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((32, 32)).astype(np.float32)
    return {"a": a, "b": rng.standard_normal((32, 32)).astype(np.float32)}


def bf16(x) -> np.ndarray:
    """float32 -> bfloat16 (round to nearest even), as the host writes a bfloat16 tensor."""
    u = np.asarray(x, np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000).astype(np.uint32).view(np.float32)


def run_bug(bug: str, **kw) -> str:
    with pytest.raises(KernelError) as e:
        run_program(config_program({bug: 1}, **kw), config_inputs(), timeout_s=30)
    return str(e.value)


WHERE = f"program 'config_state': kernel {TESTS_KERNELS / 'config_state' / 'compute.cpp'} (compute) on core (0,0): "
STARTUP = "compute_kernel_hw_startup (SrcA = CB 0, SrcB = CB 0, pack = CB 16)"
BINARY_MAP = "eltwise binary and broadcast ops map in0 -> SrcA, in1 -> SrcB: reconfig_data_format(in0, in1)"


def test_correctly_configured_kernel_adds_bf16_and_fp32():
    x = config_inputs()
    out = run_program(config_program({}), x)["out"]
    a16 = bf16(x["a"]).astype(np.float64)
    # b reaches SrcB as TF32 (truncated to 10 mantissa bits: within 2^-10 |b|), and ELWADD aligns both operands to
    # the larger exponent with 11-bit mantissas (bits shifted out are lost: within 2^-10 of the larger operand).
    b = x["b"].astype(np.float64)
    bound = 2.0**-10 * np.abs(b) + 2.0**-10 * np.maximum(np.abs(a16), np.abs(b))
    assert np.all(np.abs(out - (a16 + b)) <= bound + 1e-30)


def test_unpack_to_dest_keeps_fp32_and_the_srca_path_truncates_to_tf32():
    """copy_tile of a float32 CB: unpack-to-DST carries all 23 mantissa bits (the tile reordered from L1's faces into
    DST exactly), the SrcA path truncates them to TF32's 10 (fp32_dest_acc_en)."""
    b = config_inputs()["b"]
    direct = run_program(config_program({"COPY_B": 1}, unpack_to_dest_fp32=(1,)), config_inputs())["out"]
    via_srca = run_program(config_program({"COPY_B": 1}), config_inputs())["out"]
    assert np.array_equal(direct.view(np.uint32), b.view(np.uint32))
    assert np.array_equal(via_srca.view(np.uint32), b.view(np.uint32) & np.uint32(0xFFFFE000))
    assert not np.array_equal(direct, via_srca)


def test_missing_reconfig_between_bf16_and_fp32_operands():
    assert run_bug("BUG_MISSING_RECONFIG") == WHERE + (
        f"add_tiles: in1 CB 1 holds float32, but the unpacker's SrcB is configured for bfloat16 (by {STARTUP}); "
        f"reconfigure SrcB to CB 1 first ({BINARY_MAP})")


def test_conditional_reconfig_with_a_stale_old_operand_is_skipped_as_on_a_card():
    # reconfig_data_format_srcb(old, new) compares the two operands' formats, not the hardware state.
    assert run_bug("BUG_STALE_OLD_OPERAND") == WHERE + (
        f"add_tiles: in1 CB 1 holds float32, but the unpacker's SrcB is configured for bfloat16 (by {STARTUP}); "
        f"reconfigure SrcB to CB 1 first ({BINARY_MAP})")


def test_pack_without_pack_reconfig():
    assert run_bug("BUG_PACK_NOT_RECONFIGURED") == WHERE + (
        "pack_tile: output CB 16 holds float32, but the packer is configured for bfloat16 (by "
        "compute_kernel_hw_startup (SrcA = CB 0, SrcB = CB 1, pack = CB 0)); call pack_reconfig_data_format(16) first")


def test_pack_with_l1_accumulation_is_refused_not_ignored():
    assert run_bug("BUG_PACK_L1_ACC") == WHERE + (
        "pack_tile: pack_reconfig_l1_acc(1) is in effect: L1 accumulation is tracked but not emulated")


def test_op_before_hw_startup():
    assert run_bug("BUG_NO_HW_STARTUP") == WHERE + (
        "copy_init before compute_kernel_hw_startup: the unpacker, math and packer are unconfigured (call "
        "compute_kernel_hw_startup(in0, in1, out) once at the start of kernel_main)")


def test_reduce_max_with_a_non_unit_scaler():
    x = config_inputs()
    msg = run_bug("BUG_REDUCE_MAX_SCALER")
    a00 = float(bf16(x["a"][0:1, 0])[0])  # the scaler tile is a (bfloat16): its first element is not 1.0
    assert msg == WHERE + (
        f"reduce_tile<MAX>: scaler CB 0 tile 0 holds {a00:g} at row 0, column 0; MAX multiplies by the scaler before "
        "pooling, so its scaler must be 1.0 in row 0 of every face (use a separate all-ones scaler tile for MAX)")


def test_reduce_min_is_rejected():
    assert run_bug("BUG_REDUCE_MIN") == WHERE + (
        "reduce_init<MIN, REDUCE_ROW>: the FPU reduce has no MIN (the LLK static_asserts it: the hardware pools with "
        "GMPOOL = max and GAPOOL = sum/average only); negate and reduce MAX, or use binary_min_tile on the SFPU")


def test_copy_tile_on_the_other_unpack_path_than_its_copy_init():
    assert run_bug("BUG_COPY_INIT_OTHER_PATH", unpack_to_dest_fp32=(1,)) == WHERE + (
        "copy_tile: CB 1 is unpacked straight to DST (unpack_to_dest_fp32), but the last copy_init(0) loaded the "
        "SrcA path; call copy_init(1) first")


# ---------------------------------------------------------------- the card bug of issue 9, planted back
def planted_attention(tmp_path: Path, old: str, new: str) -> ProgramDescription:
    """The attention program with its kernel folder copied to tmp_path and `old` replaced by `new` in compute.cpp."""
    folder = tmp_path / "attention"
    shutil.copytree(KERNEL_DIR / "attention", folder)
    src = folder / "compute.cpp"
    text = src.read_text()
    assert text.count(old) == 1, f"{old!r} is not in attention/compute.cpp once"
    src.write_text(text.replace(old, new))
    desc = attention_program(1, 64, 1, 32, q_chunk=32, k_chunk=32, grid=(1, 1), interm="float32")
    kernels = [dataclasses.replace(k, source=str(folder / Path(k.source).name)) for k in desc.kernels]
    return dataclasses.replace(desc, kernels=kernels)


def attention_inputs(desc):
    rng = np.random.default_rng(5)
    q, k, v = (rng.standard_normal((1, 64, 32)).astype(np.float32) for _ in range(3))
    return q, k, v, attention_device_inputs(q, k, v, 1, 1, desc)


def test_attention_pv_reconfig_in_the_old_order_is_caught(tmp_path):
    desc = planted_attention(tmp_path, "fmt.src(cb_v, cb_p);", "fmt.src(cb_p, cb_v);")
    with pytest.raises(KernelError) as e:
        run_program(desc, attention_inputs(desc)[3], timeout_s=60)
    assert str(e.value) == (
        f"program 'attention': kernel {tmp_path / 'attention' / 'compute.cpp'} (compute) on core (0,0): "
        "matmul_block: in1 CB 2 holds bfloat16, but the unpacker's SrcA is configured for float32 (by "
        "reconfig_data_format (SrcA: CB 4 -> CB 25)); reconfigure SrcA to CB 2 first (matmul maps in0 -> SrcB, "
        "in1 -> SrcA: reconfig_data_format(in1, in0))")


def test_attention_as_shipped_runs_with_fp32_p_and_bf16_v(tmp_path):
    # The same copy without the planted swap runs and matches a float64 softmax attention.
    desc = planted_attention(tmp_path, "fmt.src(cb_v, cb_p);", "fmt.src(cb_v, cb_p);")
    q, k, v, inputs = attention_inputs(desc)
    o, _ = attention_device_outputs(run_program(desc, inputs), q.shape, 1)
    qb, kb, vb = (x.astype(np.float64) for x in (q, k, v))
    s = qb[0] @ kb[0].T / np.sqrt(32) + np.triu(np.full((64, 64), -np.inf), 1)
    p = np.exp(s - s.max(1, keepdims=True))
    want = (p / p.sum(1, keepdims=True)) @ vb[0]
    assert np.max(np.abs(o[0] - want)) < 0.05  # bf16 inputs and output: a loose bound, this checks the wiring only


def test_swiglu_matmul_reconfig_in_the_old_order_is_caught_with_bfp8_weights(tmp_path):
    from tilegraph.kernels.swiglu.program import swiglu_program

    folder = tmp_path / "swiglu"
    shutil.copytree(KERNEL_DIR / "swiglu", folder)
    header = folder / "swiglu_compute.h"  # the gate / up matmuls of the forward (and backward) compute kernel
    header.write_text(header.read_text().replace("reconfig_data_format(cb_w1, cb_x);",
                                                 "reconfig_data_format(cb_x, cb_w1);"))
    src = folder / "compute.cpp"
    desc = swiglu_program(32, 64, 32, "bfloat16", weight_dtype="bfloat8_b", grid=(1, 1))
    desc = dataclasses.replace(desc, kernels=[dataclasses.replace(k, source=str(folder / Path(k.source).name))
                                              for k in desc.kernels])
    rng = np.random.default_rng(1)
    x, w1, w3 = (rng.standard_normal(s).astype(np.float32) for s in ((32, 64), (64, 32), (64, 32)))
    with pytest.raises(KernelError) as e:
        run_program(desc, {"x": x, "w1": w1, "w3": w3}, timeout_s=30)
    assert str(e.value) == (
        f"program 'swiglu': kernel {src} (compute) on core (0,0): matmul_block: in1 CB 1 holds bfloat8_b, but the "
        "unpacker's SrcA is configured for bfloat16 (by reconfig_data_format (SrcA = CB 0)); reconfigure SrcA to "
        "CB 1 first (matmul maps in0 -> SrcB, in1 -> SrcA: reconfig_data_format(in1, in0))")
