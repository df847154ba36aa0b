"""Host helpers of the program builders (kernels/host.py): work split, core ranges, block sizes, constant tiles."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tilegraph.kernels import host
from tilegraph.kernels.attention.program import attention_consts
from tilegraph.kernels.description import cores_of

from tilegraph.errors import ShapeError


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(units=st.integers(0, 5000), cores=st.integers(1, 130), granule=st.integers(1, 4))
def test_split_work_covers_every_unit_once_and_balances(units, cores, granule):
    ranges = host.split_work(units, cores, granule)
    covered = [u for start, count in ranges for u in range(start, start + count)]
    assert covered == list(range(units))
    assert len(ranges) <= cores
    counts = [c for _, c in ranges]
    if counts:
        assert all(c % granule == 0 for c in counts[:-1])
        assert max(counts) - min(counts[:-1] or counts) <= granule  # the slowest core has at most one granule more


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(gx=st.integers(1, 10), gy=st.integers(1, 10), data=st.data())
def test_core_ranges_cover_exactly_the_chosen_cores(gx, gy, data):
    n = data.draw(st.integers(1, gx * gy))
    cores = host.grid_cores((gx, gy), n)
    assert len(set(cores)) == n and all(0 <= x < gx and 0 <= y < gy for x, y in cores)
    assert sorted(cores_of(host.core_ranges(cores))) == sorted(cores)


def test_grid_too_small_is_a_shape_error():
    with pytest.raises(ShapeError, match="bigger grid"):
        host.grid_cores((2, 2), 5)


@given(n=st.integers(1, 1000), cap=st.integers(1, 16))
def test_largest_divisor_at_most(n, cap):
    d = host.largest_divisor_at_most(n, cap)
    assert n % d == 0 and d <= cap
    assert not any(n % e == 0 for e in range(d + 1, min(n, cap) + 1))


def test_fp32_bits_and_scaler_tile_layout():
    assert host.f32_bits(1.0) == 0x3F800000
    assert struct.unpack("<f", struct.pack("<I", host.f32_bits(0.125)))[0] == 0.125
    t = host.reduce_scaler_tile(2.0)
    # Row 0 of each 16x16 face: tile rows 0 and 16, all 32 columns; everything else zero.
    assert np.all(t[[0, 16]] == 2.0) and np.count_nonzero(t) == 64


def test_attention_mask_tiles():
    c = attention_consts(seq=70).reshape(-1, 32, 32)
    assert np.all(c[1] == 0) and np.all(np.isneginf(c[2]))
    causal = c[3]
    assert np.all(np.isneginf(causal[np.triu_indices(32, 1)])) and np.all(causal[np.tril_indices(32)] == 0)
    pad = c[4]  # 70 = 2 full tiles + 6 valid columns in the third
    assert np.all(pad[:, :6] == 0) and np.all(np.isneginf(pad[:, 6:]))


def header_cbs(op: str) -> dict[str, int]:
    """CB names -> indices from kernels/<op>/<op>_common.h, the one place the kernel's three files take them from."""
    import re

    from tilegraph.kernels import KERNEL_DIR

    text = (KERNEL_DIR / op / f"{op}_common.h").read_text()
    return {m[1]: int(m[2]) for m in re.finditer(r"constexpr uint32_t (cb_\w+) = (\d+);", text)}


def test_builders_define_exactly_the_cbs_their_kernel_header_names():
    from tilegraph.kernels.attention.program import attention_program
    from tilegraph.kernels.rmsnorm.program import rmsnorm_program
    from tilegraph.kernels.swiglu.program import swiglu_program

    programs = {
        "attention": attention_program(1, 128, 2, 64, grid=(2, 1), interm="float32"),
        "rmsnorm": rmsnorm_program((64, 256), residual=True, gamma=True, grid=(2, 1)),
        "swiglu": swiglu_program(64, 320, 64, grid=(2, 1), max_k_block=2),  # several K blocks: partials too
    }
    for op, desc in programs.items():
        names = header_cbs(op)
        assert sorted(cb.index for cb in desc.cbs) == sorted(names.values()), op
    # The CBs unpacked straight to DST are the reloaded fp32 partials that only copy_tile reads, by name (the
    # running max and output feed bcast ops through SrcA, which an unpack-to-DST CB cannot: the emulator refuses it).
    att, rms = header_cbs("attention"), header_cbs("rmsnorm")
    assert set(programs["attention"].compute_config.unpack_to_dest_fp32) == {att["cb_l"]}
    assert set(programs["rmsnorm"].compute_config.unpack_to_dest_fp32) == {rms["cb_acc"]}
    sw = header_cbs("swiglu")
    assert set(programs["swiglu"].compute_config.unpack_to_dest_fp32) == {sw["cb_part_gate"], sw["cb_part_up"]}
