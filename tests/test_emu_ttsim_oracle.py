"""The emulator's datapath (kernels/emu/src/datapath.cpp) against ttsim's own FPU routines, bit for bit.

ttsim's src/tensix.cpp is compiled into a small harness (tests/ttsim_oracle/) from a copy of ../shared/ttsim; its
static elwadd / elwmul / mvmul / bfp8 unpack routines and ours see the same source-register and DST bit patterns.
hypothesis draws the data's shape: exponent centre and spread (large spreads stress the alignment), the share of
special values (zero/denormal exponents, the largest exponents, inf/NaN patterns) and of tie-prone mantissas, for
every operation x source format (TF32, bf16) x DST (bf16, fp32) x accumulation / fidelity (LoFi..HiFi4) mode.
Skips only where the ttsim sources are absent. The full table: .venv/bin/python tests/ttsim_oracle/oracle.py
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ttsim_oracle.oracle import (
    FIDELITY_PHASES,
    MODES,
    Sides,
    build_oracle,
    compare,
    compare_bfp8_unpack,
    compare_matmul_tile,
    find_ttsim,
    fp32_patterns,
)


@pytest.fixture(scope="module")
def sides():
    ttsim = find_ttsim()
    if ttsim is None:
        pytest.skip("ttsim sources not found (../shared/ttsim or $TILEGRAPH_TTSIM)")
    return Sides(build_oracle(ttsim))


DATA = st.tuples(st.integers(0, 2**32 - 1), st.sampled_from([1, 3, 60, 127, 200, 252]), st.integers(0, 40),
                 st.sampled_from([0.0, 0.05, 0.3]))


@pytest.mark.parametrize("op,fmt,fp32,mode", MODES, ids=lambda v: str(v))
@settings(max_examples=12, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=DATA)
def test_ttsim_fpu_bit_exact(sides, op, fmt, fp32, mode, data):
    seed, base, spread, special = data
    n = 32 if op == "mvmul" else 256
    cases, bad, first = compare(sides, op, fmt, fp32, mode, np.random.default_rng(seed), n, base, spread, special)
    assert bad == 0, f"{bad} of {cases} {op} data differ from ttsim; first: {first}"


@pytest.mark.parametrize("fidelity", list(FIDELITY_PHASES))
@pytest.mark.parametrize("fmt,fp32", [("tf32", True), ("bf16", True), ("bf16", False)])
@settings(max_examples=3, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), transpose=st.booleans(), spread=st.sampled_from([4, 12, 40]))
def test_ttsim_matmul_tile_bit_exact(sides, fmt, fp32, fidelity, seed, transpose, spread):
    # matmul_tiles as the emulator runs it, against ttsim's MVMUL issued in the LLK's order.
    cases, bad, first = compare_matmul_tile(sides, fmt, fp32, fidelity, transpose, np.random.default_rng(seed), 1,
                                            spread)
    assert bad == 0, f"{bad} of {cases} matmul outputs differ from ttsim; first: {first}"


def test_ttsim_bfp8_unpack_bit_exact(sides):
    cases, bad, first = compare_bfp8_unpack(sides)
    assert cases == 65536 and bad == 0, f"{bad} bfp8 (byte, exponent) pairs differ from ttsim; first: {first}"


def test_ttsim_oracle_sees_a_difference(sides):
    # The comparison is not vacuous: ttsim's ELWADD against our ELWSUB on the same data differs almost everywhere.
    rng = np.random.default_rng(0)
    a = rng.integers(0x1FC00, 0x20400, 512).astype(np.uint32)  # 19-bit data near 1.0
    b = rng.integers(0x1FC00, 0x20400, 512).astype(np.uint32)
    dst = np.zeros(512, np.uint32)
    assert (sides.oracle("elwadd", a, b, dst, True, 0) != sides.emu("elwsub", a, b, dst, True, 0)).mean() > 0.9


# ---------------------------------------------------------------------------------------------- SFPU
def _sfpmad_sides(sides):
    import ctypes

    from tilegraph.runtime.emulator import emulator_binaries

    P = ctypes.c_void_p
    oracle = ctypes.CDLL(str(sides.oracle_lib)).oracle_sfpmad_batch
    oracle.restype, oracle.argtypes = None, [ctypes.c_uint64, P, P, P, P]
    emu = emulator_binaries()[1].tgemu_sfpu_batch
    emu.restype, emu.argtypes = None, [ctypes.c_int, ctypes.c_uint64, P, P, P, ctypes.c_int, P]

    def run(a, b, c):
        a, b, c = (np.ascontiguousarray(x, np.uint32) for x in (a, b, c))
        want, got = np.zeros_like(a), np.zeros_like(a)
        oracle(a.shape[0], a.ctypes.data, b.ctypes.data, c.ctypes.data, want.ctypes.data)
        emu(0, a.shape[0], a.ctypes.data, b.ctypes.data, c.ctypes.data, 0, got.ctypes.data)
        return want, got

    return run


@settings(max_examples=40, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=DATA, addend_offset=st.sampled_from([0, 1, 24, 30, -24, -30]))
def test_ttsim_sfpmad_bit_exact(sides, data, addend_offset):
    # The SFPU's multiply-add (kernels/emu/src/sfpu.cpp mad) against ttsim's: the product and the addend's
    # exponents differ by `addend_offset` around cancellation and alignment, with special values and ties.
    seed, base, spread, special = data
    rng = np.random.default_rng(seed)
    n = 4096
    a = fp32_patterns(rng, n, base, spread, special)
    b = fp32_patterns(rng, n, 127, min(spread, 8), special)
    c = fp32_patterns(rng, n, int(np.clip(base + addend_offset, 0, 255)), spread, special)
    cancel = rng.random(n) < 0.25  # c = -(a*b) rounded: massive cancellation
    with np.errstate(all="ignore"):
        c[cancel] = (a[cancel].view(np.float32) * b[cancel].view(np.float32)).view(np.uint32) ^ 0x80000000
    want, got = _sfpmad_sides(sides)(a, b, c)
    bad = np.flatnonzero(want != got)
    assert bad.size == 0, (f"{bad.size} of {n} SFPMAD results differ from ttsim; first: a={a[bad[0]]:#010x} "
                           f"b={b[bad[0]]:#010x} c={c[bad[0]]:#010x} ttsim={want[bad[0]]:#010x} emu={got[bad[0]]:#010x}")


def test_ttsim_sfpmad_is_not_ieee_fma(sides):
    # The comparison can fail: ttsim's SFPMAD differs from a correctly rounded fma (numpy float64 then float32)
    # where the product's truncation to 27 bits or the partial sticky decides the rounding.
    rng = np.random.default_rng(1)
    a, b = (rng.integers(0x3F800000, 0x40000000, 20000).astype(np.uint32) for _ in range(2))
    c = ((a.view(np.float32).astype(np.float64) * b.view(np.float32)).astype(np.float32).view(np.uint32)
         ^ 0x80000000) + rng.integers(-3, 4, 20000).astype(np.uint32)
    want, _ = _sfpmad_sides(sides)(a, b, c)
    with np.errstate(all="ignore"):
        f64 = a.view(np.float32).astype(np.float64) * b.view(np.float32).astype(np.float64) + c.view(np.float32)
    assert (want != f64.astype(np.float32).view(np.uint32)).sum() > 0
