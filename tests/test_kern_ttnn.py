"""ProgramDescription -> ttnn.ProgramDescriptor at realistic shapes, built on the host without a device, and the
generic_op path (needs a card: skipped here with the reason)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from tilegraph.kernels import KERNEL_DIR
from tilegraph.kernels.attention.program import _attention_cbs, attention_program
from tilegraph.kernels.description import L1_CB_BUDGET, TENSOR_ACCESSOR_IS_DRAM, TILE_BYTES, cores_of
from tilegraph.kernels.rmsnorm.program import rmsnorm_program
from tilegraph.kernels.swiglu.program import swiglu_program
from tilegraph.runtime.emulator import quantize
from tilegraph.runtime.kernel_ops import run_kernel_op
from tilegraph.runtime.ttnn_program import (
    L1_LIMIT_BYTES,
    card_present,
    host_tensor,
    kernel_source_text,
    read_back,
    to_program_descriptor,
)

from tilegraph.errors import DeviceError, KernelError, ShapeError

# ttnn tilizes / quantizes host tensors only with a cluster description; a mock one needs no card.
os.environ.setdefault("TT_METAL_MOCK_CLUSTER_DESC_PATH", str(Path(__file__).parent / "data" / "wormhole_N150.yaml"))
import ttnn  # noqa: E402 (a dependency on this platform: a missing ttnn must fail, not skip)

REALISTIC = {
    # Llama-style shapes: attention B=1, H=8, S=2048, D=64 on 8x8; a hidden-8192 norm; a 4096 -> 11008 MLP.
    "attention": lambda: attention_program(1, 2048, 8, 64, grid=(8, 8)),
    "attention_gqa_big_chunks": lambda: attention_program(1, 4096, 32, 128, 8, q_chunk=256, k_chunk=256, grid=(8, 8)),
    "rmsnorm": lambda: rmsnorm_program((1, 2048, 8192), residual=True, grid=(8, 8)),
    "swiglu": lambda: swiglu_program(2048, 4096, 11008, grid=(8, 8)),
}


@pytest.mark.parametrize("name", sorted(REALISTIC))
def test_program_descriptor_builds_on_host_within_l1(name):
    desc = REALISTIC[name]()
    built = to_program_descriptor(desc)
    pd = built.descriptor
    assert len(pd.kernels) == 3 and len(pd.cbs) == len(desc.cbs)
    # Every core that runs the kernels has its L1 counted, and stays below a Tensix core's 1.5 MB.
    assert set(built.l1_bytes_per_core) == set(desc.cores)
    assert 0 < built.max_l1_bytes < L1_LIMIT_BYTES
    assert built.l1_bytes_per_core == desc.l1_bytes_per_core()
    for spec, kd in zip(desc.kernels, pd.kernels):
        assert kd.source_type == ttnn.KernelDescriptor.SourceType.SOURCE_CODE
        assert kd.kernel_source == kernel_source_text(spec.source)
        # Each TensorAccessor placeholder became the interleaved-DRAM words [IsDram, page size].
        words = list(kd.compile_time_args)
        assert len(words) == 2 * len(spec.compile_time_args)
        assert words[0::2] == [TENSOR_ACCESSOR_IS_DRAM] * len(spec.compile_time_args)
        assert dict(kd.defines) == dict(spec.defines)
    for spec, cd in zip(desc.cbs, pd.cbs):
        (fmt,) = cd.format_descriptors
        assert (fmt.buffer_index, fmt.page_size, cd.total_size) == (spec.index, spec.page_size, spec.total_bytes)


def test_runtime_args_per_core_match_the_description():
    desc = attention_program(1, 2048, 8, 64, grid=(8, 8))
    pd = to_program_descriptor(desc, addresses={t.name: 4096 * (i + 1) for i, t in enumerate(desc.tensors)}).descriptor
    reader = pd.kernels[0]
    for x, y in [(0, 0), (7, 7), (3, 5)]:
        got = list(reader.runtime_args[x][y])
        want = desc.kernels[0].runtime_args[(x, y)]
        assert got[:4] == [4096, 8192, 12288, 16384]  # q, k, v, consts addresses
        assert got[4:] == list(want[4:])


def test_attention_work_is_balanced_low_and_high_chunks():
    desc = attention_program(1, 2048, 8, 64, grid=(8, 8))
    counts = [args[11] for args in desc.kernels[0].runtime_args.values()]
    # 8 heads x 16 Q chunks over 64 cores: every core gets one zigzag pair (a low and a high chunk).
    assert len(counts) == 64 and set(counts) == {2}
    starts = sorted(args[10] for args in desc.kernels[0].runtime_args.values())
    assert starts == list(range(0, 128, 2))


def test_bfp8_tiles_and_cb_formats():
    desc = swiglu_program(256, 512, 256, "bfloat8_b")
    assert {c.page_size for c in desc.cbs if c.index < 16} == {TILE_BYTES["bfloat8_b"]}
    built = to_program_descriptor(desc)
    assert built.descriptor.cbs[0].format_descriptors[0].page_size == 1088


def test_chunks_too_big_for_l1_shrink_until_the_cbs_fit():
    # 1024-row chunks at head_dim 128 need more than the L1 budget even with bf16 intermediates: the builder halves
    # them (the longer first, K on a tie) and takes the first pair that fits.
    desc = attention_program(1, 8192, 8, 128, q_chunk=1024, k_chunk=1024, interm="float32", grid=(8, 8))
    qc, kc = next(iter(desc.kernels[1].runtime_args.values()))[:2]
    assert max(desc.l1_bytes_per_core().values()) <= L1_CB_BUDGET
    assert (qc, kc) != (32, 32) and qc * kc < 32 * 32
    before = (2 * qc, kc) if qc == kc else (qc, 2 * kc)  # the pair tried just before (K halves first on a tie)
    single_buffered = _attention_cbs((), *before, 4, "bfloat16", "bfloat16", "float32")
    assert sum(c.total_bytes for c in single_buffered) > L1_CB_BUDGET


def test_a_head_too_wide_for_any_chunk_is_an_error_naming_head_dim_chunks_and_budget():
    # head_dim 4096: one 32-row chunk of K and V, double-buffered, is already 2 MiB of bf16 tiles.
    with pytest.raises(ShapeError, match=r"^op 'attention': head_dim 4096 does not fit the 1228800 B per-core "
                                         r"circular-buffer budget with any chunks \(asked q_chunk=128, "
                                         r"k_chunk=128; even q_chunk=k_chunk=32 is over\)"):
        attention_program(1, 256, 1, 4096, grid=(1, 1))


def test_every_core_in_the_grid_gets_work_only_once():
    desc = rmsnorm_program((4, 100, 8192), grid=(8, 8))
    rows = []
    for args in desc.kernels[0].runtime_args.values():
        rows.extend(range(args[4], args[4] + args[5]))  # (x, residual, gamma, wt, row_start, row_count, blk)
    assert sorted(rows) == list(range(13))  # 400 rows = 13 tile rows, each on exactly one core
    assert set(cores_of(desc.kernels[0].core_ranges)) == set(desc.kernels[0].runtime_args)


@pytest.mark.parametrize("dtype", ["bfloat16", "bfloat8_b", "float32"])
def test_host_tensors_for_generic_op_round_trip_like_the_emulator(dtype):
    # The exact host-side conversions run_on_device uses (pad to tiles, tilize, quantize; read back and crop),
    # checked on the host against the emulator's own format conversion.
    desc = attention_program(1, 70, 2, 32, grid=(2, 2))
    spec = desc.tensor("q")
    spec = type(spec)(spec.name, (1, 2, 70, 32), dtype)
    x = np.random.default_rng(0).standard_normal((1, 2, 70, 32)).astype(np.float32)
    back = read_back(ttnn, spec, host_tensor(ttnn, spec, x))
    assert back.shape == x.shape
    want = quantize(np.pad(x, ((0, 0), (0, 0), (0, 26), (0, 0))).reshape(-1, 32), dtype).reshape(1, 2, 96, 32)
    np.testing.assert_array_equal(back, want[:, :, :70, :])


@pytest.mark.skipif(card_present(), reason="a card is present: the no-card error path does not apply")
def test_ttnn_backend_without_a_card_is_a_device_error():
    x = np.ones((32, 64), np.float32)
    with pytest.raises(DeviceError, match="needs a Tenstorrent card"):
        run_kernel_op("rmsnorm", [x, np.ones(64, np.float32)], {"eps": 1e-5}, "ttnn")


def test_generic_op_on_a_card_matches_the_emulator():
    if not card_present():
        pytest.skip("needs a Tenstorrent card: runs the kernels with ttnn.generic_op")
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((64, 256)).astype(np.float32), rng.standard_normal(256).astype(np.float32)
    on_card = run_kernel_op("rmsnorm", [x, g], {"eps": 1e-5}, "ttnn")
    emulated = run_kernel_op("rmsnorm", [x, g], {"eps": 1e-5}, "emu")
    np.testing.assert_allclose(on_card[0], emulated[0], rtol=2**-6, atol=1e-3)


# CBs that hold fp32 partials the compute kernel reloads with copy_tile: rmsnorm's running sum of squares (25);
# attention's running sum (27): the one fp32 partial that only copy_tile reloads.
RELOADED_FP32 = {
    "rmsnorm": (lambda: rmsnorm_program((1, 64, 256), grid=(2, 1)), {25}),
    "attention": (lambda: attention_program(1, 128, 2, 64, grid=(2, 1), interm="float32"), {27}),
    "attention_bf16_interm": (lambda: attention_program(1, 128, 2, 64, grid=(2, 1), interm="bfloat16"), {27}),
}


@pytest.mark.parametrize("name", sorted(RELOADED_FP32))
def test_compute_descriptor_unpacks_reloaded_fp32_partials_to_dest(name):
    build, want = RELOADED_FP32[name]
    desc = build()
    pd = to_program_descriptor(desc).descriptor
    (compute,) = [kd for spec, kd in zip(desc.kernels, pd.kernels) if spec.role == "compute"]
    modes = list(compute.config.unpack_to_dest_mode)
    assert len(modes) == 64  # the host-side NUM_CIRCULAR_BUFFERS
    got = {i for i, m in enumerate(modes) if m == ttnn.UnpackToDestMode.UnpackToDestFp32}
    assert got == want
    assert all(m == ttnn.UnpackToDestMode.Default for i, m in enumerate(modes) if i not in want)
    # Readers and writers have no compute config: only the compute kernel carries the modes.
    assert compute.config.fp32_dest_acc_en


def test_unpack_to_dest_must_name_float32_cbs_with_fp32_dest():
    import dataclasses

    # A ProgramDescription validates itself when it is made, so each bad configuration fails at construction.
    desc = rmsnorm_program((1, 64, 256), grid=(2, 1))
    cc = desc.compute_config
    with pytest.raises(KernelError, match=r"unpack_to_dest_fp32 names CB 4, a bfloat16 CB; only float32 CBs"):
        dataclasses.replace(desc, compute_config=dataclasses.replace(cc, unpack_to_dest_fp32=(4,)))
    with pytest.raises(KernelError, match=r"names CB 9, a CB this program does not define"):
        dataclasses.replace(desc, compute_config=dataclasses.replace(cc, unpack_to_dest_fp32=(9,)))
    with pytest.raises(KernelError, match=r"unpack_to_dest_fp32 needs fp32_dest_acc_en=True"):
        dataclasses.replace(desc, compute_config=dataclasses.replace(cc, fp32_dest_acc_en=False))


@pytest.mark.parametrize("source", [f"{op}/{role}.cpp" for op in ("attention", "rmsnorm", "swiglu")
                                    for role in ("reader", "compute", "writer")])
def test_source_code_kernels_are_self_contained(source, tmp_path):
    # tt-metal compiles SOURCE_CODE text outside the kernel's folder: the kernel-local header must be inlined.
    import re
    import subprocess

    text = kernel_source_text(source)
    original = (KERNEL_DIR / source).read_text().splitlines()
    local = [ln for ln in original if (m := re.match(r'#include "(\w+\.h)"', ln))
             and (KERNEL_DIR / source).with_name(m[1]).is_file()]
    assert local, f"{source} includes no kernel-local header"
    assert not any(ln in text.splitlines() for ln in local)
    rest = [ln for ln in original if ln not in local]
    lines = iter(text.splitlines())
    assert all(any(ln == got for got in lines) for ln in rest)  # the kernel's own lines, in order
    alone = tmp_path / Path(source).name  # no header next to it here
    alone.write_text(text)
    role = Path(source).stem
    defines = ["-DFUSE_GAMMA", "-DFUSE_RESIDUAL"] if source.startswith("rmsnorm") else []
    defines.append("-DKERNEL_COMPILE_TIME_ARGS=" + ",".join(["2", "2048"] * 4))  # up to 4 TensorAccessorArgs
    r = subprocess.run(["g++", "-std=c++17", "-fsyntax-only", f"-I{KERNEL_DIR / 'emu'}", *defines, str(alone)],
                       check=False, capture_output=True, text=True)
    assert r.returncode == 0, f"{source} ({role}) does not compile on its own:\n{r.stderr[:2000]}"
