"""The custom kernels (kernels/rmsnorm, swiglu, attention) run through the kernel emulator on several cores and are
compared with the ops' float64 numpy references.

Tolerances are the per-element bounds of runtime/fuzz.py (`error_bounds`), stated and justified there: the
reference sees the inputs as the device holds them (bfloat16 / bfloat8_b quantized), and the kernel may differ by
the bf16 output rounding (2 x 2^-8 relative), fp32 accumulation (4 x 2^-24 per term) and TF32 matrix-engine
operands (2 x 2^-11 per pass of an fp32 intermediate).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from tilegraph.kernels import description as prog
from tilegraph.kernels.registry import DeviceOptions, get_kernel_op
from tilegraph.kernels.rmsnorm.program import rmsnorm_device_inputs, rmsnorm_program
from tilegraph.runtime import fuzz
from tilegraph.runtime.emulator import run_program
from tilegraph.runtime.kernel_ops import run_kernel_op

from tilegraph.errors import KernelError

# derandomize: CI sees the same 200 cases per op every run (explore new ones with `tilegraph fuzz --seed`).
FUZZ = settings(max_examples=200, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


def _check(op, case):
    outcome = fuzz.run_case(op, case, "emu")
    assert outcome.ok, f"{op} {case}: {outcome.worst} (max abs {outcome.max_abs:.3g}, err/bound {outcome.ratio:.3g})"
    return outcome


# -- hand-picked cases: every feature at least once, on multiple cores ---------------------------------------
@pytest.mark.parametrize("case", [
    {"rows": 70, "width": 8192, "residual": True, "eps": 1e-5, "max_block": 8},  # hidden 8192, two passes of 32 blocks
    {"rows": 33, "width": 100, "residual": False, "eps": 1e-6, "max_block": 2},   # neither dim a multiple of 32
    {"rows": 5, "width": 200, "residual": True, "eps": 0.1, "max_block": 7},      # Wt = 7: one block per pass
])
@pytest.mark.parametrize("dtype", ["bfloat16", "bfloat8_b"])
def test_rmsnorm_matches_reference(case, dtype):
    _check("rmsnorm", {**case, "dtype": dtype, "grid": (3, 2), "scale": 1.0, "seed": 3})


@pytest.mark.parametrize("m,k,n", [(64, 256, 96), (50, 70, 33), (1, 1, 1), (96, 1000, 64)])
@pytest.mark.parametrize("dtype", ["bfloat16", "bfloat8_b"])
def test_swiglu_matches_reference(m, k, n, dtype):
    _check("swiglu", {"m": m, "k": k, "n": n, "max_k_block": 8, "dtype": dtype, "grid": (3, 2), "scale": 1.0, "seed": 5})


@pytest.mark.parametrize("seq,causal,q_chunk,k_chunk", [
    (256, True, 64, 64), (256, True, 32, 128), (256, True, 128, 32),  # chunk shapes around the diagonal
    (200, False, 64, 32), (77, True, 32, 64), (31, False, 128, 128),   # padded sequences
])
@pytest.mark.parametrize("head_dim", [32, 64, 128])
def test_attention_matches_reference(seq, causal, q_chunk, k_chunk, head_dim):
    _check("attention", {"batch": 1, "seq": seq, "kv_heads": 2, "group": 2, "head_dim": head_dim, "causal": causal,
                             "q_chunk": q_chunk, "k_chunk": k_chunk, "softmax_scale": None, "dtype": "bfloat16",
                             "grid": (3, 2), "scale": 1.0, "seed": 7})


def test_attention_bfp8_gqa_explicit_scale():
    _check("attention", {"batch": 2, "seq": 96, "kv_heads": 1, "group": 4, "head_dim": 64, "causal": True, "q_chunk": 32,
                             "k_chunk": 32, "softmax_scale": 0.3, "dtype": "bfloat8_b", "grid": (2, 2), "scale": 1.0, "seed": 9})


@pytest.mark.parametrize("m, k, n", [(64, 256, 96), (33, 100, 70)])
def test_swiglu_bfp8_weights_with_bf16_activations(m, k, n):
    # SrcA holds the bfloat8_b weights and SrcB the bfloat16 activations: the kernel must reconfigure both.
    case = {"m": m, "k": k, "n": n, "max_k_block": 4, "max_n_block": 2, "dtype": "bfloat16",
            "weight_dtype": "bfloat8_b", "grid": (3, 2), "scale": 1.0, "seed": 6}
    _check("swiglu", case)
    inputs, attrs, opts = fuzz.make_inputs("swiglu", case)
    desc, _ = get_kernel_op("swiglu").program(inputs, attrs, opts)
    # when K spans several K blocks (k = 256: 8 tiles, blocks of 4), the partial sums wait in fp32 CBs 24 / 25
    partials = {24: "float32", 25: "float32"} if k > 4 * 32 else {}
    assert {c.index: c.data_format for c in desc.cbs} == {0: "bfloat16", 1: "bfloat8_b", 2: "bfloat8_b", 16: "bfloat16",
                                                          **partials}


def test_attention_rows_all_negative_scores_and_large_logits():
    # Scores far below zero (max must not be clamped at 0) and large logits (online rescaling must stay finite).
    rng = np.random.default_rng(0)
    b, s, h, d = 1, 64, 2, 32
    q = rng.standard_normal((b, s, h * d)).astype(np.float32) * 4
    k = -np.sign(q[:, :, :d]) * np.abs(rng.standard_normal((b, s, d))).astype(np.float32) * 4
    k = np.ascontiguousarray(k.astype(np.float32))
    v = rng.standard_normal((b, s, d)).astype(np.float32)
    attrs = {"heads": h, "kv_heads": 1, "causal": True, "scale": 1.0}
    held = fuzz.device_values([q, k, v], "attention", "bfloat16", "emu")
    got = run_kernel_op("attention", held, attrs, "emu", DeviceOptions("bfloat16", (2, 1), {"q_chunk": 32, "k_chunk": 32}))
    refs = fuzz.reference("attention", held, attrs)
    bounds = fuzz.error_bounds("attention", held, attrs, refs, "emu")
    assert refs[1].min() < -20  # the case really has very negative rows
    for g, r, bound in zip(got, refs, bounds):
        assert np.all(np.abs(g - r) <= bound)


# -- hypothesis fuzz: >= 200 examples per op (shapes not multiples of 32, both formats, varied grids) ----------
@FUZZ
@given(case=fuzz.case_strategy("rmsnorm"))
def test_fuzz_rmsnorm(case):
    _check("rmsnorm", case)


@FUZZ
@given(case=fuzz.case_strategy("swiglu"))
def test_fuzz_swiglu(case):
    _check("swiglu", case)


@FUZZ
@given(case=fuzz.case_strategy("attention", small=True))
def test_fuzz_attention(case):
    _check("attention", case)


@FUZZ
@given(case=fuzz.case_strategy("rmsnorm_bwd"))
def test_fuzz_rmsnorm_bwd(case):
    _check("rmsnorm_bwd", case)


@FUZZ
@given(case=fuzz.case_strategy("swiglu_bwd"))
def test_fuzz_swiglu_bwd(case):
    _check("swiglu_bwd", case)


# -- the emulator catches a builder that sizes a circular buffer wrong ----------------------------------------
def test_undersized_cb_is_reported_with_kernel_core_and_cb():
    desc = rmsnorm_program((64, 256), gamma=False, grid=(2, 1), max_block=4)
    # Shrink the squares CB (index 24) below one block: the compute kernel's reserve of 4 pages can never succeed.
    cbs = [prog.CBSpec(24, c.data_format, 2, c.core_ranges) if c.index == 24 else c for c in desc.cbs]
    broken = prog.ProgramDescription(desc.name, desc.tensors, cbs, desc.kernels, desc.compute_config, desc.grid)
    x = np.ones((64, 256), np.float32)
    with pytest.raises(KernelError, match=r"(?s)24.*compute|compute.*24"):
        run_program(broken, {"x": x}, timeout_s=10)


def test_attention_bf16_intermediates_when_l1_is_short():
    # Big chunks fall back to bf16 scores / probabilities / running output (as tt-metal's sdpa keeps them); force
    # that path on a small case. Extra error over the fp32 path, per element: scores rounded to bf16 (abs
    # |s| 2^-8 after the 2x margin) perturb P relatively by 2 |s|max 2^-8; P and the running output are rounded to
    # bf16 once per K chunk (relative 2^-8 each).
    b, s, h, d = 1, 200, 2, 64
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((b, s, h * d)).astype(np.float32) for _ in range(3))
    attrs = {"heads": h, "kv_heads": h, "causal": True, "scale": None}
    held = fuzz.device_values([q, k, v], "attention", "bfloat16", "emu")
    opts = DeviceOptions("bfloat16", (2, 2), {"q_chunk": 64, "k_chunk": 64, "interm": "bfloat16"})
    got = run_kernel_op("attention", held, attrs, "emu", opts)
    refs = fuzz.reference("attention", held, attrs)
    bounds = fuzz.error_bounds("attention", held, attrs, refs, "emu")
    smax = np.abs(held[0]).max() * np.abs(held[1]).max() * d / np.sqrt(d)
    n_chunks = -(-s // 64)
    extra = 2 * smax * 2.0**-8 + (n_chunks + 2) * 2.0**-8
    o_abs, _ = fuzz.reference("attention", [held[0], held[1], np.abs(held[2])], attrs)
    assert np.all(np.abs(got[0] - refs[0]) <= bounds[0] + extra * o_abs)
    assert np.all(np.abs(got[1] - refs[1]) <= bounds[1] + extra)
    # ... and the same case with fp32 intermediates is strictly closer to the reference.
    fp32 = run_kernel_op("attention", held, attrs, "emu", DeviceOptions("bfloat16", (2, 2), {"q_chunk": 64, "k_chunk": 64}))
    assert np.abs(fp32[0] - refs[0]).max() < np.abs(got[0] - refs[0]).max()


@pytest.mark.parametrize("residual", [False, True])
def test_rmsnorm_row_resident_matches_streamed_bit_for_bit(residual):
    """Row-resident mode (each row read once, gamma once per core) does the same arithmetic as streaming both
    passes from DRAM: the outputs are identical, on several cores with several rows each and several blocks."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((7 * 32 + 5, 320)).astype(np.float32)
    inputs = [x, 1 + rng.standard_normal(320).astype(np.float32) / 4]
    if residual:
        inputs.append(rng.standard_normal(x.shape).astype(np.float32))
    outs = {}
    for resident in (False, True):
        opts = DeviceOptions("bfloat16", (2, 2), {"max_block": 4, "row_resident": resident})
        desc, _ = get_kernel_op("rmsnorm").program(inputs, {"eps": 1e-5}, opts)
        assert ("ROW_RESIDENT" in desc.kernels[1].defines) == resident
        outs[resident] = run_kernel_op("rmsnorm", inputs, {"eps": 1e-5}, "emu", opts)
    for a, b in zip(outs[False], outs[True]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("block", [(1, 1), (2, 4), (8, 2)])
def test_swiglu_output_blocks_agree_bit_for_bit(block):
    """Every output block shape does the same arithmetic per output tile (K in the same order, fp32 partials
    parked and reloaded exactly): the outputs are identical to the 1 x 1 block, across edge blocks and K blocks."""
    rng = np.random.default_rng(12)
    m, k, n = 5 * 32 + 7, 6 * 32, 7 * 32 - 3
    inputs = [rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32) / 8,
              rng.standard_normal((k, n)).astype(np.float32) / 8]
    outs = [run_kernel_op("swiglu", inputs, {}, "emu",
                          DeviceOptions("bfloat16", (2, 2), {"max_k_block": 2, "block": b})) for b in [(1, 1), block]]
    np.testing.assert_array_equal(outs[0][0], outs[1][0])


@pytest.mark.parametrize("weight_dtype", [None, "bfloat8_b"])
@pytest.mark.parametrize("m, k, n, block", [
    (5 * 32 + 7, 6 * 32, 7 * 32 - 3, (1, 2)),  # edge block row and column; group 4: a round with idle members
    (3 * 32, 2 * 32, 9 * 32 - 1, (2, 4)),       # group 4 > block rows 2: skipped; group 2 exact
    (7 * 32 - 9, 3 * 32, 2 * 32, (1, 2)),       # one block column: groups split the block rows (parts > 1)
])
def test_swiglu_weight_multicast_groups_agree_bit_for_bit(m, k, n, block, weight_dtype):
    """Multicast groups (the sender reads each W K block once per group round and multicasts it to the members)
    change only who reads the W tiles: the outputs are identical to group 1 (every core reads its own W, the data
    flow of the program before multicast), and the W tiles read from DRAM drop to one read per group round."""
    from tilegraph.kernels.swiglu.program import swiglu_program
    from tilegraph.runtime.emulator import run_program_counted

    rng = np.random.default_rng(13)
    x = rng.standard_normal((m, k)).astype(np.float32)
    w1, w3 = (rng.standard_normal((k, n)).astype(np.float32) / 8 for _ in range(2))
    mt, kt, nt = -(-m // 32), -(-k // 32), -(-n // 32)
    blocks_m = -(-mt // block[0])
    w_tile = prog.TILE_BYTES[weight_dtype or "bfloat16"]
    runs = {}
    for group in (1, 2, 4):
        if group > 1 and group > blocks_m:
            continue
        desc = swiglu_program(m, k, n, grid=(2, 4), max_k_block=2, block=block, group=group,
                              weight_dtype=weight_dtype)
        out, threads = run_program_counted(desc, {"x": x, "w1": w1, "w3": w3})
        runs[group] = (out["out"], threads, sum(t.get("noc.read.dram.bytes") for t in threads))
    base_out, base_threads, base_reads = runs.pop(1)
    assert runs, "no multicast group was run"
    for group, (out, threads, reads) in runs.items():
        np.testing.assert_array_equal(out, base_out)
        # x reads are the same in both; W: 2 * kt * nt tiles per round instead of per block row.
        saved = 2 * kt * nt * (blocks_m - -(-blocks_m // group)) * w_tile
        assert base_reads - reads == saved
        assert sum(t.get("noc.write.mcast.n") for t in threads) > 0
    assert sum(t.get("noc.write.mcast.n") for t in base_threads) == 0


def test_swiglu_builder_multicasts_when_weight_reads_dominate():
    """The layout cost knows the multicast: at Llama-3-8B prefill shapes (DRAM-bound per block row without it) the
    builder picks a group of several cores, whose W reads are a fraction of group 1's."""
    from tilegraph.kernels.swiglu import program as sw

    desc = sw.swiglu_program(2048, 4096, 14336, grid=(8, 8))
    args = next(iter(desc.kernels[1].runtime_args.values()))
    (mb, nb), group = (args[12], args[13]), args[7]
    assert group > 1
    mt, nt = 2048 // 32, 14336 // 32
    with_mcast = sw._layout_cost(mt, nt, mb, nb, group, (8, 8))
    without = sw._layout_cost(mt, nt, mb, nb, 1, (8, 8))
    assert with_mcast[1] < without[1] and with_mcast[0] < without[0]


def test_rmsnorm_gamma_is_read_once_and_multicast():
    """Row-resident rmsnorm on 13 cores of an 8x8 grid (a full row and a partial one: two receiver rectangles):
    core (0, 0) reads gamma from DRAM once and multicasts it; the output equals the streamed mode's (every core
    reads gamma itself) bit for bit, and DRAM serves x once plus gamma once."""
    from tilegraph.runtime.emulator import run_program_counted

    rng = np.random.default_rng(21)
    rows, width = 13 * 32, 256
    x = rng.standard_normal((rows, width)).astype(np.float32)
    gamma = (1 + 0.1 * rng.standard_normal(width)).astype(np.float32)
    outs, counted = {}, {}
    for resident in (True, False):
        desc = rmsnorm_program((rows, width), grid=(8, 8), row_resident=resident)
        assert ("GAMMA_MCAST" in desc.kernels[0].defines) == resident
        outs[resident], counted[resident] = run_program_counted(desc, rmsnorm_device_inputs(x, gamma))
    np.testing.assert_array_equal(outs[True]["out"], outs[False]["out"])
    readers = {t.core: t for t in counted[True] if t.role == "reader"}
    wt = width // 32
    sender = readers[(0, 0)]
    assert sender.get("noc.write.mcast.n") == 4  # per rectangle: the gamma pages, then the VALID flag
    assert sender.get("noc.write.mcast.dests") == 2 * (7 + 5)
    assert sender.get("noc.write.mcast.bytes") >= 2 * wt * 2048
    assert all(t.get("noc.write.mcast.n") == 0 for c, t in readers.items() if c != (0, 0))
    assert sum(t.get("noc.read.dram.bytes") for t in readers.values()) == (13 * wt + wt) * 2048
