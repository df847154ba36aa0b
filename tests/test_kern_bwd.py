"""The backward kernels (rmsnorm_bwd, the swiglu gate backward) on the emulator at chosen shapes, their program
descriptions (CBs, L1 at realistic shapes, ttnn descriptors on the host), the dgamma combine, and the swiglu_bwd
op's reference against finite differences of the forward. The hypothesis fuzz of both ops is in
tests/test_kern_emu.py (through `tilegraph fuzz`'s case runner)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from tilegraph.kernels.rmsnorm.program_bwd import (
    combine_dgamma_partials,
    rmsnorm_bwd_device_inputs,
    rmsnorm_bwd_device_outputs,
    rmsnorm_bwd_error_bounds,
    rmsnorm_bwd_program,
)
from tilegraph.kernels.swiglu.program_bwd import (
    swiglu_bwd_device_inputs,
    swiglu_bwd_error_bounds,
    swiglu_bwd_finish,
    swiglu_gate_bwd_program,
)
from tilegraph.ops import get_op
from tilegraph.runtime.emulator import quantize, run_program

os.environ.setdefault("TT_METAL_MOCK_CLUSTER_DESC_PATH", str(Path(__file__).parent / "data" / "wormhole_N150.yaml"))
L1_LIMIT_BYTES = 1536 * 1024


def held(a, fmt="bfloat16"):
    return quantize(a.reshape(-1, a.shape[-1]), fmt).reshape(a.shape)


def run_rmsnorm_bwd(rows, width, grid, max_block, seed=0, eps=1e-5):
    rng = np.random.default_rng(seed)
    x = held(rng.standard_normal((rows, width)).astype(np.float32))
    dy = held(rng.standard_normal((rows, width)).astype(np.float32))
    gamma = held((1 + 0.5 * rng.standard_normal(width)).astype(np.float32))
    desc = rmsnorm_bwd_program(x.shape, grid=grid, max_block=max_block, eps=eps)
    got = rmsnorm_bwd_device_outputs(run_program(desc, rmsnorm_bwd_device_inputs(x, gamma, dy)), x.shape)
    x64 = [a.astype(np.float64) for a in (x, gamma, dy)]
    refs = get_op("rmsnorm_bwd").reference(x64, {"eps": eps})
    bounds = rmsnorm_bwd_error_bounds(x64, eps, refs, 2.0**-7, 2.0**-9, 2.0**-8, 2.0**-22)
    return desc, got, refs, bounds


@pytest.mark.parametrize("rows, width, grid, max_block", [
    (70, 8192, (2, 1), 8),  # hidden 8192 streamed in 8-tile blocks, 8 partial tiles per core, 3 tile rows on 2 cores
    (33, 1100, (3, 1), 3),  # 35 width tiles: blocks of 1, a partial tile of 32 width tiles and one of 3
    (40, 760, (2, 1), 8),   # 24 width tiles: blocks of 8
    (1, 5, (1, 1), 8),      # batch 1, one padded tile
])  # fmt: skip
def test_rmsnorm_bwd_kernel_within_bounds(rows, width, grid, max_block):
    desc, got, refs, bounds = run_rmsnorm_bwd(rows, width, grid, max_block)
    for g, r, b in zip(got, refs, bounds):
        assert g.shape == r.shape
        assert np.all(np.abs(g - r) <= b)
    assert desc.tensor("dgamma_partials").shape[0] == 32 * len(desc.cores)


def test_rmsnorm_bwd_bounds_catch_a_lost_row():
    """The dgamma bound is tight enough that one tile row fewer (what a core dropping its work would give) fails."""
    _, got, refs, bounds = run_rmsnorm_bwd(40, 70, (2, 1), 8)
    rng = np.random.default_rng(0)
    x = held(rng.standard_normal((40, 70)).astype(np.float32)).astype(np.float64)
    dy = held(rng.standard_normal((40, 70)).astype(np.float32)).astype(np.float64)
    r = 1 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-5)
    missing = got[1] - (dy * x * r)[32:].sum(0)  # the second core's rows dropped
    assert np.any(np.abs(missing - refs[1]) > bounds[1])


def test_dgamma_partials_combine_in_core_order():
    """Element (core c, row k, partial tile p, column i) is the sum for column (p * group + k) * 32 + i."""
    cores, group, n_groups, width = 3, 4, 2, 7 * 32 + 5
    parts = np.zeros((cores * 32, n_groups * 32), np.float32)
    want = np.zeros(n_groups * group * 32)
    rng = np.random.default_rng(1)
    for c in range(cores):
        for p in range(n_groups):
            for k in range(group):
                vals = rng.standard_normal(32).astype(np.float32)
                parts[c * 32 + k, p * 32:(p + 1) * 32] = vals
                want[(p * group + k) * 32:(p * group + k + 1) * 32] += vals
    parts[5:32, :] = 99.0  # rows at or beyond the group are not part of the result
    parts[32 + 4:64, :] = 99.0
    parts[64 + 4:, :] = 99.0
    np.testing.assert_allclose(combine_dgamma_partials(parts, width, group), want[:width], rtol=0, atol=1e-6)


def test_swiglu_bwd_reference_matches_finite_differences():
    rng = np.random.default_rng(0)
    x, w1, w3 = rng.standard_normal((3, 4)), rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
    dy = rng.standard_normal((3, 5))
    dx, dw1, dw3 = get_op("swiglu_bwd").reference([x, w1, w3, dy], {})

    def loss(x, w1, w3):
        return float((get_op("swiglu").reference([x, w1, w3], {})[0] * dy).sum())

    for arr, grad, which in ((x, dx, 0), (w1, dw1, 1), (w3, dw3, 2)):
        num = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            args = [x.copy(), w1.copy(), w3.copy()]
            args[which][idx] += 1e-6
            up = loss(*args)
            args[which][idx] -= 2e-6
            num[idx] = (up - loss(*args)) / 2e-6
        np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("m, k, n, grid, k_blk", [(65, 43, 50, (3, 2), 2), (1, 200, 33, (2, 1), 8)])
def test_swiglu_gate_bwd_kernel_within_bounds(m, k, n, grid, k_blk):
    rng = np.random.default_rng(2)
    x = held(rng.standard_normal((m, k)).astype(np.float32))
    w1 = held((rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32))
    w3 = held((rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32))
    dh = held(rng.standard_normal((m, n)).astype(np.float32))
    desc = swiglu_gate_bwd_program(m, k, n, grid=grid, max_k_block=k_blk)
    got = swiglu_bwd_finish(run_program(desc, swiglu_bwd_device_inputs(x, w1, w3, dh)), x, w1, w3)
    x64 = [a.astype(np.float64) for a in (x, w1, w3, dh)]
    refs = get_op("swiglu_bwd").reference(x64, {})
    for g, r, b in zip(got, refs, swiglu_bwd_error_bounds(x64, refs, 2.0**-7, 2.0**-8, 2.0**-22, 2.0**-20)):
        assert np.all(np.abs(g - r) <= b)


REALISTIC = {
    "rmsnorm_bwd": lambda: rmsnorm_bwd_program((1, 2048, 8192), grid=(8, 8)),
    "swiglu_gate_bwd": lambda: swiglu_gate_bwd_program(2048, 4096, 11008, grid=(8, 8)),
}


@pytest.mark.parametrize("name", sorted(REALISTIC))
def test_bwd_program_descriptors_build_on_host_within_l1(name):
    ttnn = pytest.importorskip("ttnn")
    from tilegraph.runtime.ttnn_program import kernel_source_text, to_program_descriptor

    desc = REALISTIC[name]()
    built = to_program_descriptor(desc)
    assert len(built.descriptor.kernels) == 3 and len(built.descriptor.cbs) == len(desc.cbs)
    assert set(built.l1_bytes_per_core) == set(desc.cores) and len(desc.cores) == 64
    assert 0 < built.max_l1_bytes < L1_LIMIT_BYTES
    for spec, kd in zip(desc.kernels, built.descriptor.kernels):
        assert kd.source_type == ttnn.KernelDescriptor.SourceType.SOURCE_CODE
        assert kd.kernel_source == kernel_source_text(spec.source)


def test_rmsnorm_bwd_l1_does_not_grow_with_the_row():
    """Streaming: the CBs hold blocks and one partial tile per 32 width tiles, so hidden 8192 needs ~350 KB."""
    small = rmsnorm_bwd_program((64, 1024), grid=(1, 1)).max_l1_bytes()
    big = rmsnorm_bwd_program((64, 8192), grid=(1, 1)).max_l1_bytes()
    assert big - small == 7 * 4096  # 7 more fp32 partial tiles, nothing else


def header_cbs(name: str) -> dict[str, int]:
    import re

    from tilegraph.kernels import KERNEL_DIR

    op = name.split("_")[0]
    text = (KERNEL_DIR / op / f"{op}_bwd_common.h").read_text()
    for header in re.findall(r'#include "(\w+_common\.h)"', text):  # the forward's layout, if it builds on it
        text += (KERNEL_DIR / op / header).read_text()
    return {m[1]: int(m[2]) for m in re.finditer(r"constexpr uint32_t (cb_\w+) = (\d+);", text)}


def test_bwd_builders_define_exactly_the_cbs_their_kernel_header_names():
    rms = rmsnorm_bwd_program((64, 256), grid=(2, 1))
    swi = swiglu_gate_bwd_program(64, 320, 64, grid=(2, 1))  # K in two blocks: the partial-sum CBs too
    names = header_cbs("rmsnorm")
    assert sorted(cb.index for cb in rms.cbs) == sorted(names.values())
    # (the forward's cb_out and the backward's cb_da share index 16: one of the two is defined)
    assert sorted(cb.index for cb in swi.cbs) == sorted(set(header_cbs("swiglu").values()))
    assert set(rms.compute_config.unpack_to_dest_fp32) == {names["cb_acc"], names["cb_dg"], names["cb_gacc"]}


@pytest.mark.parametrize("block", [(2, 4), (8, 2)])
def test_swiglu_gate_bwd_blocks_agree_bit_for_bit(block):
    """a and b are recomputed block by block (K in the same order, fp32 partials and the last K block's a / b
    parked and reloaded exactly), so every output block shape gives the 1 x 1 block's da and db, across edge
    blocks and K blocks."""
    rng = np.random.default_rng(13)
    m, k, n = 5 * 32 + 7, 6 * 32, 7 * 32 - 3
    x, dh = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((m, n)).astype(np.float32)
    w1, w3 = (rng.standard_normal((k, n)).astype(np.float32) / 8 for _ in range(2))
    outs = [run_program(swiglu_gate_bwd_program(m, k, n, grid=(2, 2), max_k_block=2, block=b),
                        swiglu_bwd_device_inputs(x, w1, w3, dh)) for b in [(1, 1), block]]
    for name in ("da", "db"):
        assert np.abs(outs[0][name]).max() > 0
        np.testing.assert_array_equal(outs[0][name], outs[1][name])


def test_swiglu_gate_bwd_hifi2_runs_and_stays_within_its_bound():
    """math_fidelity reaches the gate recompute: HiFi2 (SrcB = x loses its low mantissa bits) errs more than
    HiFi4 on the same inputs, and within the bound with runtime/fuzz.py's fidelity term."""
    from tilegraph.kernels.registry import DeviceOptions
    from tilegraph.runtime import fuzz
    from tilegraph.runtime.kernel_ops import run_kernel_op

    rng = np.random.default_rng(5)
    m, k, n = 64, 256, 64
    x, dh = held(rng.standard_normal((m, k)).astype(np.float32)), held(rng.standard_normal((m, n)).astype(np.float32))
    w1, w3 = (held((rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)) for _ in range(2))
    x64 = [a.astype(np.float64) for a in (x, w1, w3, dh)]
    refs = get_op("swiglu_bwd").reference(x64, {})
    errs = {}
    for fid in ("HiFi4", "HiFi2"):
        opts = DeviceOptions("bfloat16", (2, 2), {"math_fidelity": fid})
        got = run_kernel_op("swiglu_bwd", [x, w1, w3, dh], {}, "emu", opts)
        bounds = fuzz.error_bounds("swiglu_bwd", x64, {}, refs, "emu", opts)
        for g, r, b in zip(got, refs, bounds):
            assert np.all(np.abs(g - r) <= b), fid
        errs[fid] = np.mean(np.abs(got[1] - refs[1]))
    assert errs["HiFi2"] > 1.2 * errs["HiFi4"]
