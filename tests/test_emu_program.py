"""The emulator runs tt-metal kernels on the host: a multi-core eltwise program matches numpy, and planted kernel
bugs (wrong CB page count, missing pop, deadlock, DST misuse) fail with messages naming kernel, core and CB."""

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

from tilegraph.errors import KernelError

KERNELS = Path(__file__).parent / "kernels" / "eltwise"


def eltwise_program(shape, dtype, ncores, *, fp32_acc=False, compute_defines=None, writer_defines=None,
                    cb_pages=2, out_dtype=None, reader_defines=None):
    """out = a + b over `ncores` cores in a row, tiles split as evenly as possible."""
    a = TensorSpec("a", shape, dtype)
    n = a.num_pages
    per = [n // ncores + (i < n % ncores) for i in range(ncores)]
    starts = np.cumsum([0, *per])[:-1].tolist()
    cores = [(i, 0) for i in range(ncores)]
    rng = (CoreRange((0, 0), (ncores - 1, 0)),)
    out_dtype = out_dtype or dtype
    return ProgramDescription(
        name="eltwise",
        tensors=[a, TensorSpec("b", shape, dtype), TensorSpec("out", shape, out_dtype, "output")],
        cbs=[CBSpec(0, dtype, cb_pages, rng), CBSpec(1, dtype, cb_pages, rng), CBSpec(16, out_dtype, cb_pages, rng)],
        kernels=[
            KernelSpec("reader", str(KERNELS / "reader.cpp"), rng, (TensorAccessorCTA("a"), TensorAccessorCTA("b")),
                       defines=reader_defines or {},
                       runtime_args={c: (BufferAddress("a"), BufferAddress("b"), s, p)
                                     for c, s, p in zip(cores, starts, per)}),
            KernelSpec("compute", str(KERNELS / "compute.cpp"), rng, defines=compute_defines or {},
                       runtime_args={c: (p,) for c, p in zip(cores, per)}),
            KernelSpec("writer", str(KERNELS / "writer.cpp"), rng, (TensorAccessorCTA("out"),),
                       defines=writer_defines or {},
                       runtime_args={c: (BufferAddress("out"), s, p) for c, s, p in zip(cores, starts, per)}),
        ],
        compute_config=ComputeConfig(fp32_dest_acc_en=fp32_acc),
        grid=(8, 8),
    )


def bf16_rne(x: np.ndarray) -> np.ndarray:
    """Independent numpy model of float32 -> bfloat16 round-to-nearest-even (finite values)."""
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return u.astype(np.uint32).view(np.float32)


def inputs(shape, seed=0):
    rng = np.random.default_rng(seed)
    return {"a": rng.standard_normal(shape).astype(np.float32), "b": rng.standard_normal(shape).astype(np.float32)}


def test_eltwise_bf16_multicore_is_exact():
    # bf16 inputs, bf16 DST: ELWADD aligns b to a's exponent in an 11-bit window and rounds the sum to bf16 half
    # up (datapath.h; bit-exact against ttsim in test_emu_ttsim_oracle.py). So the output is the exact sum rounded
    # to bf16, within half a bf16 ulp plus the 11-bit alignment (2^-3 of an ulp), never RNE's tie choice.
    shape = (3, 50, 70)  # not tile multiples: padding is added on the way in and dropped on the way out
    x = inputs(shape)
    out = run_program(eltwise_program(shape, "bfloat16", 4), x)["out"].astype(np.float64)
    exact = bf16_rne(x["a"]).astype(np.float64) + bf16_rne(x["b"])
    assert np.all(bf16_rne(out.astype(np.float32)) == out)  # the output is bf16
    ulp = 2.0 ** (np.floor(np.log2(np.maximum(np.abs(exact), 2.0**-100))) - 7)
    assert np.all(np.abs(out - exact) <= 0.625 * ulp)


def test_eltwise_fp32_dest_acc():
    # float32 tensors with fp32 DST: FPU operands are TF32 truncations (10-bit mantissa), so each operand is
    # within 2^-10 relative of its value and the sum within 2^-10 * (|a| + |b|) (+ the 11-bit alignment).
    shape = (64, 96)
    x = inputs(shape, 1)
    out = run_program(eltwise_program(shape, "float32", 3, fp32_acc=True), x)["out"]
    bound = 2.0 ** -10 * (np.abs(x["a"]) + np.abs(x["b"])) * 1.51
    assert np.all(np.abs(out - (x["a"] + x["b"])) <= bound)


def test_eltwise_mul_bfp8_output():
    # bf16 inputs, product rounded to bf16 in DST (HiFi4: exact 8x8-bit product, one rounding), packed to
    # bfloat8_b by the packer: each datum within one step of its 16-wide group's shared exponent (the packer
    # rounds the bf16 to 6 mantissa bits, then shifts to the shared exponent, 2^(E - 6) per step; the group's
    # largest value may round up into the next binade, which doubles the step).
    shape = (32, 64)
    x = inputs(shape, 2)
    out = run_program(eltwise_program(shape, "bfloat16", 2, compute_defines={"ELTWISE_MUL": 1},
                                      out_dtype="bfloat8_b"), x)["out"]
    prod = bf16_rne(x["a"]).astype(np.float64) * bf16_rne(x["b"])
    group_max = np.abs(prod).reshape(32, 4, 16).max(-1, keepdims=True).repeat(16, -1).reshape(shape)
    step = 2.0 ** (np.floor(np.log2(group_max * (1 + 2.0**-6))) - 6)
    assert np.all(np.abs(out - prod) <= step + 2.0**-8 * np.abs(prod))
    assert np.abs(out - x["a"] * x["b"]).max() < 0.05 * np.abs(x["a"] * x["b"]).max()


def test_l1_bytes_per_core():
    d = eltwise_program((64, 64), "bfloat16", 2, cb_pages=4)
    assert d.l1_bytes_per_core() == {(0, 0): 3 * 4 * 2048, (1, 0): 3 * 4 * 2048}


def run_bug(timeout_s=30, **kw):
    shape = (32, 32 * 6)  # 6 tiles on one core: more than the CBs hold
    with pytest.raises(KernelError) as e:
        run_program(eltwise_program(shape, "bfloat16", 1, **kw), inputs(shape), timeout_s=timeout_s)
    return str(e.value)


def test_missing_pop_is_a_deadlock_naming_the_cb():
    msg = run_bug(compute_defines={"BUG_MISSING_POP": 1})
    assert "deadlock" in msg
    assert "cb_reserve_back(1, 1)" in msg and "CB 1 [2 pages: 2 filled" in msg
    assert "reader.cpp (reader) on core (0,0)" in msg


def where(role: str) -> str:
    """The prefix every emulator error of the eltwise program's kernel `role` on core (0,0) starts with."""
    return f"program 'eltwise': kernel {KERNELS / role}.cpp ({role}) on core (0,0): "


# One planted bug per CB check, each message asserted in full: a check deleted from the emulator would turn the
# bug into a deadlock or a silent overrun, whose message differs.
def test_waiting_for_more_pages_than_the_cb_holds():
    assert run_bug(compute_defines={"BUG_WAIT_TOO_MANY": 1}) == (
        where("compute") + "cb_wait_front(1, 3): CB 1 holds only 2 pages; this can never succeed")


def test_reserving_more_pages_than_the_cb_holds():
    assert run_bug(reader_defines={"BUG_RESERVE_TOO_MANY": 1}) == (
        where("reader") + "cb_reserve_back(0, 3): CB 0 holds only 2 pages; this can never succeed")


def test_wrong_cb_page_count_for_block():
    # 2-page reserves on a 3-page CB: the second block would straddle the end of the ring (tt-metal does not wrap
    # a reservation), so the CB's page count must be a multiple of the block.
    assert run_bug(reader_defines={"BUG_RESERVE_BLOCKS_OF_2": 1}, cb_pages=3) == (
        where("reader") + "cb_reserve_back(0, 2): the block would run past the end of CB 0 (write pointer at page "
        "2 of 3): make its page count a multiple of 2")


def test_wait_block_that_wraps_the_cb():
    assert run_bug(compute_defines={"BUG_WAIT_BLOCKS_OF_2": 1}, cb_pages=3) == (
        where("compute") + "cb_wait_front(1, 2): the block would run past the end of CB 1 (read pointer at page 2 "
        "of 3): make its page count a multiple of 2")


def test_pushing_more_pages_than_reserved():
    assert run_bug(reader_defines={"BUG_PUSH_UNRESERVED": 1}) == (
        where("reader") + "cb_push_back(0, 2) pushes more pages than were reserved with cb_reserve_back (1) on "
        "CB 0 [2 pages: 0 filled, pushed 0, popped 0]")


def test_extra_wait_deadlocks():
    msg = run_bug(writer_defines={"BUG_EXTRA_WAIT": 1})
    assert "deadlock" in msg and "writer.cpp (writer) on core (0,0): blocked in cb_wait_front(16, 1)" in msg


def test_popping_more_than_pushed():
    msg = run_bug(writer_defines={"BUG_POP_TWICE": 1})
    assert "writer.cpp (writer) on core (0,0)" in msg and "cb_pop_front(16, 2)" in msg


def test_pop_before_write_barrier():
    msg = run_bug(writer_defines={"BUG_NO_BARRIER": 1})
    assert "cb_pop_front(16, 1) while a NoC write from those pages is in flight" in msg
    assert "noc_async_write_barrier" in msg


def test_noc_read_into_unreserved_cb_pages():
    msg = run_bug(reader_defines={"BUG_READ_BEFORE_RESERVE": 1})
    assert "reader.cpp (reader) on core (0,0): noc_async_read: 2048 bytes at page 0 of CB 0" in msg
    assert "cb_reserve_back first" in msg


def test_crashing_kernel_is_named():
    msg = run_bug(writer_defines={"BUG_BAD_POINTER": 1})
    assert "writer.cpp (writer) on core (0,0) crashed with SIGSEGV" in msg


def test_dprint_goes_to_stderr(capfd):
    shape = (32, 64)
    run_program(eltwise_program(shape, "bfloat16", 2, compute_defines={"DEBUG_PRINT": 1}), inputs(shape))
    err = capfd.readouterr().err
    assert "[emu core (0,0) compute] tile 0 of 1" in err and "[emu core (1,0) compute] tile 0 of 1" in err


def test_op_without_its_init():
    msg = run_bug(compute_defines={"BUG_WRONG_INIT": 1})
    assert "compute.cpp (compute) on core (0,0): mul_tiles after add_init: call mul_init first" in msg


def test_sfpu_op_without_its_init():
    msg = run_bug(compute_defines={"BUG_SFPU_NO_INIT": 1})
    assert "after no SFPU init: call exp_tile_init() first" in msg


def test_dram_transfer_across_interleaved_pages():
    msg = run_bug(reader_defines={"BUG_TWO_PAGES_AT_ONCE": 1})
    assert "reader.cpp (reader) on core (0,0): noc_async_read: 4096 bytes at page 0 of tensor 'a' cross into page 1" in msg


def test_push_without_pack():
    msg = run_bug(compute_defines={"BUG_PUSH_UNPACKED": 1})
    assert "cb_push_back(16, 1) but only 0 tile(s) were packed into the reserved pages" in msg


def test_spinning_kernel_times_out_with_wait_report():
    msg = run_bug(timeout_s=1, compute_defines={"BUG_SPIN": 1})
    assert "timeout after 1 s (a kernel loops without progress)" in msg
    assert "compute.cpp (compute) on core (0,0): running" in msg
    assert "reader.cpp (reader) on core (0,0): blocked in cb_reserve_back(0, 1)" in msg


def test_dst_index_out_of_range():
    msg = run_bug(compute_defines={"BUG_DST_INDEX": 1})
    # bf16 DST, double-buffered: 8 tiles per tile_regs_acquire, so index 8 is one past the end
    assert "DST index 8 out of range: DST holds 8 tiles" in msg and "compute.cpp (compute) on core (0,0)" in msg


def test_pack_outside_tile_regs_wait():
    msg = run_bug(compute_defines={"BUG_PACK_OUTSIDE": 1})
    assert "pack_tile from DST[0] outside tile_regs_wait()..tile_regs_release()" in msg


def test_bad_input_shape_is_rejected():
    d = eltwise_program((32, 32), "bfloat16", 1)
    with pytest.raises(KernelError, match="input 'a' has shape"):
        run_program(d, {"a": np.zeros((32, 31), np.float32), "b": np.zeros((32, 32), np.float32)})


def test_kernel_compile_cache_keys_on_defines(tmp_path, monkeypatch):
    from tilegraph.runtime.emulator import compile_kernel

    d = eltwise_program((32, 32), "bfloat16", 1)
    d_mul = eltwise_program((32, 32), "bfloat16", 1, compute_defines={"ELTWISE_MUL": 1})
    compute, compute_mul = d.kernels[1], d_mul.kernels[1]
    first = compile_kernel(compute, d)
    assert compile_kernel(compute, d) == first  # cached: same object
    assert compile_kernel(compute_mul, d_mul) != first  # a define changes the cache key


def test_compile_error_is_a_kernel_error(tmp_path):
    bad = tmp_path / "compute.cpp"
    bad.write_text('#include "api/compute/matmul.h"\nvoid kernel_main() { mm_init(0, 1, 16); }\n')
    d = eltwise_program((32, 32), "bfloat16", 1)
    k = d.kernels[1]
    d2 = ProgramDescription(d.name, d.tensors, d.cbs,
                            [d.kernels[0], KernelSpec("compute", str(bad), k.core_ranges, runtime_args=k.runtime_args),
                             d.kernels[2]], d.compute_config, d.grid)
    with pytest.raises(KernelError, match=r"failed to compile for the emulator(.|\n)*mm_init"):
        run_program(d2, inputs((32, 32)))
