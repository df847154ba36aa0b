"""The emulator's packer and float32 unpack (kernels/emu/src/datapath.cpp) against numpy models written from the
documented behaviour (kernels/emu/API.md "Numerics"; read in ttsim's PACR / UNPACR, which are not callable on their
own, so these are not in the ttsim oracle). The models work on values (float64), the code on bit patterns.
"""

import ctypes

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tilegraph.runtime.emulator import emulator_binaries


@pytest.fixture(scope="module")
def lib():
    cdll = emulator_binaries()[1]
    cdll.tgemu_dp_pack_bf16.restype = ctypes.c_uint16
    cdll.tgemu_dp_pack_bf16.argtypes = [ctypes.c_uint32, ctypes.c_int]
    cdll.tgemu_dp_unpack_fp32.restype = ctypes.c_uint32
    cdll.tgemu_dp_unpack_fp32.argtypes = [ctypes.c_uint32, ctypes.c_int]
    cdll.tgemu_dp_pack_bfp8.restype = None
    cdll.tgemu_dp_pack_bfp8.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    return cdll


def f32(bits: int) -> float:
    return float(np.array([bits], np.uint32).view(np.float32)[0])


def bits_of(x: float) -> int:
    return int(np.array([x], np.float32).view(np.uint32)[0])


def round_half_away(x: float, mantissa_bits: int) -> float:
    """x rounded to `mantissa_bits` stored bits, ties away from zero (float64, exact for these sizes)."""
    if x == 0:
        return 0.0
    ulp = 2.0 ** (np.floor(np.log2(abs(x))) - mantissa_bits)
    return float(np.sign(x) * np.floor(abs(x) / ulp + 0.5) * ulp)


SMALLEST_NORMAL = 2.0**-126
FINITE = st.integers(0, 2**32 - 1).filter(lambda u: (u >> 23) & 255 != 255)


@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(u=FINITE)
def test_pack_fp32_dst_to_bf16_rounds_half_away_and_flushes(lib, u):
    x = f32(u)
    want = round_half_away(x, 7)
    if abs(want) < SMALLEST_NORMAL:
        want = 0.0  # +0, whatever the sign
    got_bits = lib.tgemu_dp_pack_bf16(u, 1)
    got = f32(got_bits << 16)
    if abs(want) >= 2.0**128:
        assert got == np.sign(x) * np.inf
    else:
        assert got == want and (want != 0 or got_bits == 0)


def test_pack_bf16_specials(lib):
    assert lib.tgemu_dp_pack_bf16(0x7FC00001, 1) == 0x7F80  # NaN -> +inf
    assert lib.tgemu_dp_pack_bf16(0xFFC00000, 1) == 0xFF80  # -NaN -> -inf
    assert lib.tgemu_dp_pack_bf16(0x7F7FFFFF, 1) == 0x7F80  # rounds up to inf
    assert lib.tgemu_dp_pack_bf16(bits_of(1.0 + 2.0**-8), 1) == 0x3F81  # a tie goes away from zero (RNE: 0x3F80)
    assert lib.tgemu_dp_pack_bf16(0x80000001, 1) == 0  # -denormal -> +0
    assert lib.tgemu_dp_pack_bf16(0x3F81FFFF, 0) == 0x3F81  # a bf16 DST's low bits are not there to round


@settings(max_examples=400, derandomize=True, database=None, deadline=None)
@given(u=FINITE, tf32=st.booleans())
def test_unpack_fp32_truncates_to_tf32_or_bf16(lib, u, tf32):
    x = f32(u)
    keep = 10 if tf32 else 7
    if not tf32 and abs(x) < SMALLEST_NORMAL:
        want = 0.0
    elif x == 0 or abs(x) < SMALLEST_NORMAL:
        want = x if x == 0 else None  # a denormal keeps its (truncated) bits in TF32; the FPU reads it as zero
    else:
        ulp = 2.0 ** (np.floor(np.log2(abs(x))) - keep)
        want = float(np.sign(x) * np.floor(abs(x) / ulp) * ulp)
    got = f32(lib.tgemu_dp_unpack_fp32(u, int(tf32)) << 13)
    if want is not None:
        assert got == want


@settings(max_examples=300, derandomize=True, database=None, deadline=None)
@given(values=st.lists(st.floats(-1e4, 1e4, width=32), min_size=16, max_size=16), fp32_dst=st.booleans())
def test_pack_bfp8_group_model(lib, values, fp32_dst):
    x = np.array(values, np.float32)
    if not fp32_dst:
        x = (x.view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)  # what a bf16 DST holds
    # Model: each value to bf16 with a 6-bit mantissa (ties up in magnitude); values below the smallest normal are
    # 0; the shared exponent is the largest; magnitudes in steps of 2^(E - 6), round half up, at most 127 steps.
    b6 = np.array([round_half_away(float(v), 6) for v in x])
    b6[np.abs(b6) < SMALLEST_NORMAL] = 0.0
    exps = np.array([np.floor(np.log2(abs(v))) + 127 if v else 0 for v in b6])
    shared = int(exps.max())
    step = 2.0 ** (shared - 127 - 6)
    mag = np.minimum(np.floor(np.abs(b6) / step + 0.5), 127).astype(int)
    mag[exps < shared - 7] = 0  # shifted out entirely
    want = np.where(mag > 0, (b6 < 0).astype(int) << 7 | mag, 0)
    e_out = ctypes.c_uint8()
    m_out = (ctypes.c_uint8 * 16)()
    lib.tgemu_dp_pack_bfp8(x.view(np.uint32).ctypes.data, int(fp32_dst), ctypes.byref(e_out), m_out)
    assert e_out.value == shared
    assert list(m_out) == want.tolist()
