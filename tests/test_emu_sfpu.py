"""The emulator's SFPU functions (kernels/emu/src/sfpu.cpp) against float64 numpy, with the bound each LLK algorithm
implies, for the accurate (APPROX=false) and approximate (APPROX=true) paths and both DST widths.

The SFPU's multiply-add itself is checked bit for bit against ttsim (tests/test_emu_ttsim_oracle.py, sfpmad); the
functions below are sequences of it, so what is checked here is the algorithm and its bound:
- exp, fp32 DST (Juffa): Cody-Waite reduction + degree-6 polynomial, <= 2 fp32 ulp (2^-22 relative).
- exp, bf16 DST (exp_21f, TTI path): its polynomial's relative error on the fraction is at most c0 - 1 =
  2^-9 (c0 is the fp16a immediate 1.001953125; numpy: max over all 2^23 fractions), then one bf16 rounding
  (2^-8): (1 + 2^-9)(1 + 2^-8) - 1.
- exp APPROX (Schraudolph, B - C = 32500.82): the piecewise-linear mantissa is within 3.5% of 2^f (a bf16 DST
  truncates: a further 2^-7).
- recip: fp32 two Newton steps from a 1.01%-seed: error ~1e-8, so <= 2 ulp after rounding; bf16: the LLK's
  claim that every normal bf16 input rounds correctly (checked exactly, all 2^15 positive normal inputs' mantissas);
  APPROX: one Newton step, seed error 0.0101 squared = 1.02e-4 (+ rounding) -> 1.1e-4; bf16 DST truncates (2^-7).
- sqrt / rsqrt: fp32 <= 2^-22; bf16 one rounding of a ~2^-22 result (2^-8 + 2^-21); APPROX: the magic-constant
  seed with one tuned step has max relative error 8.8e-4 (Moroz et al., modified inverse square root), 9e-4 here.
"""

import ctypes

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tilegraph.runtime.emulator import emulator_binaries

OPS = {"exp": 1, "recip": 2, "sqrt": 3, "rsqrt": 4, "round_bf16": 5, "sigmoid": 6, "silu": 7, "log": 8}
P = ctypes.c_void_p


def sfpu(op, x, approx=False, fp32=True, scale=0x3F80):
    f = emulator_binaries()[1].tgemu_sfpu_batch
    f.restype, f.argtypes = None, [ctypes.c_int, ctypes.c_uint64, P, P, P, ctypes.c_int, P]
    a = np.ascontiguousarray(np.asarray(x, np.float32).view(np.uint32))
    b = np.full_like(a, scale)
    out = np.zeros_like(a)
    f(OPS[op], a.size, a.ctypes.data, b.ctypes.data, b.ctypes.data, int(approx) | 2 * int(fp32), out.ctypes.data)
    return out.view(np.float32)


def bf16(x):
    return (np.asarray(x, np.float32).view(np.uint32) & 0xFFFF0000).view(np.float32)


def rne_bf16(x64):
    u = np.asarray(x64, np.float64).astype(np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16).astype(np.uint32).view(np.float32)


EXP_21F = (1 + 2**-9) * (1 + 2**-8) - 1
BOUNDS = {  # (function, approx, fp32 DST) -> max relative error
    ("exp", False, True): 2**-22, ("exp", False, False): EXP_21F,
    ("exp", True, True): 0.035, ("exp", True, False): 1.035 * (1 + 2**-7) - 1,
    ("recip", False, True): 2**-22, ("recip", True, True): 1.1e-4, ("recip", True, False): (1 + 1.1e-4) * (1 + 2**-7) - 1,
    ("sqrt", False, True): 2**-22, ("sqrt", False, False): 2**-8 + 2**-21,
    ("sqrt", True, True): 9e-4, ("sqrt", True, False): (1 + 9e-4) * (1 + 2**-8) - 1,
    ("rsqrt", False, True): 2**-22, ("rsqrt", False, False): 2**-8 + 2**-21,
    ("rsqrt", True, True): 9e-4, ("rsqrt", True, False): (1 + 9e-4) * (1 + 2**-8) - 1,
}
# sigmoid / silu (no APPROX path): fp32: exp <= 2 ulp, the add, two Newton steps <= 2 ulp, silu's multiply: 6 ulp.
# bf16: exp_21f unrounded with c0 = 1.0017248 (<= 1.73e-3 on exp(-x), which sigmoid damps by e/(1+e) <= 1), one
# Newton step (1.02e-4), one bf16 rounding (2^-8).
SIGMOID_BF16 = (1 + 1.73e-3 + 1.1e-4) * (1 + 2**-8) - 1
BOUNDS.update({("sigmoid", False, True): 6 * 2**-24, ("sigmoid", False, False): SIGMOID_BF16,
               ("silu", False, True): 6 * 2**-24, ("silu", False, False): SIGMOID_BF16 + 2**-23})
REFERENCE = {"sigmoid": lambda x: 1 / (1 + np.exp(-x)), "silu": lambda x: x / (1 + np.exp(-x)), "exp": np.exp, "recip": lambda x: 1 / x, "sqrt": np.sqrt, "rsqrt": lambda x: 1 / np.sqrt(x)}


@pytest.mark.parametrize("func,approx,fp32", list(BOUNDS), ids=lambda v: str(v))
@settings(max_examples=10, derandomize=True, database=None, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), log_range=st.sampled_from([1.0, 8.0, 40.0]))
def test_sfpu_function_within_its_bound(func, approx, fp32, seed, log_range):
    rng = np.random.default_rng(seed)
    if func in ("exp", "sigmoid", "silu"):
        x = rng.uniform(-min(80.0, 2 * log_range), min(80.0, 2 * log_range), 4096)
    else:
        x = np.exp(rng.uniform(-log_range, log_range, 4096))
        if func == "recip":  # both signs
            x *= np.where(rng.random(4096) < 0.5, -1, 1)
    x = x.astype(np.float32)
    if not fp32:
        x = bf16(x)
    got = sfpu(func, x, approx, fp32).astype(np.float64)
    want = REFERENCE[func](x.astype(np.float64))
    rel = np.abs(got - want) / np.abs(want)
    i = int(np.argmax(rel))
    assert rel[i] <= BOUNDS[func, approx, fp32], f"{func} x={x[i]!r}: {got[i]!r} vs {want[i]!r} (rel {rel[i]:.3g})"


def test_sfpu_recip_bf16_rounds_correctly():
    # recip_tile on a bf16 DST: one Newton step from the bf16 seed, rounded before scaling; the LLK states it rounds
    # every normal bf16 input correctly. All mantissas x exponents 2^-100..2^100, both signs.
    m = np.arange(128, dtype=np.uint32)
    e = np.arange(27, 228, dtype=np.uint32)
    x = ((e[:, None] << 23) | (m[None, :] << 16)).ravel().view(np.float32)
    x = np.concatenate([x, -x])
    got = sfpu("recip", x, approx=False, fp32=False)
    want = rne_bf16(1 / x.astype(np.float64))
    bad = np.flatnonzero(got.view(np.uint32) != want.view(np.uint32))
    assert bad.size == 0, f"{bad.size} inputs misrounded; first x={x[bad[0]]!r}: {got[bad[0]]!r} vs {want[bad[0]]!r}"


def test_sfpu_special_values():
    # The LLK's special cases: exp saturates to 0 / inf; recip(+-0) = +-inf, recip(+-inf) = +-0; sqrt(+-0) = +-0,
    # rsqrt(0) = inf, rsqrt(inf) = 0; sqrt/rsqrt of a negative: NaN in fp32, inf in bf16 (the bf16 round maps NaN
    # to inf), as ckernel_sfpu_sqrt.h documents.
    assert list(sfpu("exp", [-200.0, 200.0, 0.0])) == [0.0, np.inf, 1.0]
    assert list(sfpu("exp", [-200.0, 200.0, 0.0], fp32=False)) == [0.0, np.inf, 1.0]
    r = sfpu("recip", [0.0, -0.0, np.inf, -np.inf])
    assert list(r) == [np.inf, -np.inf, 0.0, 0.0] and np.signbit(r[3])
    assert list(sfpu("sqrt", [0.0, 4.0, np.inf])) == [0.0, 2.0, np.inf]
    assert list(sfpu("rsqrt", [0.0, 4.0, np.inf])) == [np.inf, 0.5, 0.0]
    assert np.isnan(sfpu("sqrt", [-4.0])[0]) and np.isnan(sfpu("rsqrt", [-4.0])[0])
    assert sfpu("sqrt", [-4.0], fp32=False)[0] == np.inf and sfpu("rsqrt", [-4.0], fp32=False)[0] == np.inf


def test_sfpu_exp_scale_and_approx_differ_from_accurate():
    # scale_en multiplies by the bf16 immediate first: exp(x * 0.5) (0x3F00 = 0.5); APPROX is not the accurate path.
    x = np.linspace(-4, 4, 257, dtype=np.float32)
    np.testing.assert_allclose(sfpu("exp", x, scale=0x3F00), np.exp(x.astype(np.float64) * 0.5), rtol=2**-22)
    assert (sfpu("exp", x, approx=True) != sfpu("exp", x)).mean() > 0.9


def test_sfpu_bf16_round_is_ties_away():
    # SFP_STOCH_RND fp32 -> bf16 (RND_EVEN as ttsim models it) rounds a tie up in magnitude, unlike ttnn's host RNE;
    # zero and denormals go to +0, NaN to inf.
    x = np.array([0x3F808000, 0xBF808000, 0x3F818000, 0x00000001, 0x80400000, 0x7FC00000], np.uint32).view(np.float32)
    want = np.array([0x3F810000, 0xBF810000, 0x3F820000, 0, 0, 0x7F800000], np.uint32)
    np.testing.assert_array_equal(sfpu("round_bf16", x).view(np.uint32), want)


@pytest.mark.parametrize("fp32", [True, False])
@settings(max_examples=10, derandomize=True, database=None, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), log_range=st.sampled_from([0.3, 8.0, 80.0]))
def test_sfpu_log_within_its_bound(fp32, seed, log_range):
    # log (Juffa; no APPROX path) on m in [0.75, 1.5): the fp32 polynomial's error is 1.7e-8 relative (float64 over
    # the interval), plus a few fp32 roundings: 2^-21 |log x|. bf16: the degree-1 r leaves 8.94e-4 absolute, then
    # one bf16 rounding: 2^-8 |log x| + 9e-4 (+ fp32 noise).
    x = np.exp(np.random.default_rng(seed).uniform(-log_range, log_range, 4096)).astype(np.float32)
    if not fp32:
        x = bf16(x)
    x = x[x != 1]
    got = sfpu("log", x, fp32=fp32).astype(np.float64)
    want = np.log(x.astype(np.float64))
    bound = 2**-21 * np.abs(want) if fp32 else (2**-8 + 2**-20) * np.abs(want) + 9e-4
    i = int(np.argmax(np.abs(got - want) - bound))
    assert abs(got[i] - want[i]) <= bound[i], f"log x={x[i]!r}: {got[i]!r} vs {want[i]!r}"


def test_sfpu_log_special_values():
    # log(0) = -inf, log(1) = 0, log(inf) = inf; negatives NaN in fp32 and inf in bf16 (its NaN rounds to inf).
    assert list(sfpu("log", [0.0, -0.0, 1.0, np.inf])) == [-np.inf, -np.inf, 0.0, np.inf]
    assert np.isnan(sfpu("log", [-2.0])[0]) and sfpu("log", [-2.0], fp32=False)[0] == np.inf
