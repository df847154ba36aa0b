// Shared helpers of the CPU kernels (kernels/cpu): element loops the compiler vectorizes.
//
// The numpy backend's fused elementwise work runs here: one pass over the data per op instead of numpy's one
// pass per arithmetic operation. Each kernel is a template over float (training) and double (ground truth) with
// extern "C" entry points tg_<name>_f32 / tg_<name>_f64 (one small macro per kernel), loaded with ctypes by tilegraph/ops/cpu_kernels.py.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace tg {

// exp for float that the compiler vectorizes (libm's expf is a call per element), written once for a float
// (F = float, I = int32_t) and for a GCC vector of floats (F, I = vectors of float and int32 lanes):
// Cody-Waite range reduction x = n*ln2 + r, |r| <= ln2/2, n rounded with the 1.5*2^23 trick (no floor call),
// then the degree-6 minimax polynomial of Cephes' expf: max error ~1 ulp. Below ln(FLT_MIN) it returns exactly
// 0 (no denormals), -inf gives 0, NaN stays NaN.
//   exp_poly:            the whole float range; above ln(FLT_MAX) it is inf.
//   exp_poly_below_88:   for x < 88 only (softmax arguments are <= 0): one 2^n factor and no overflow checks,
//                        ~5% faster attention (measured).
constexpr float EXP_LO = -87.3365447504f, EXP_HI = 88.7228391117f, EXP_ROUND = 12582912.0f;  // 1.5 * 2^23

// e = exp(r) and n with x = n*ln2 + r, for x already clamped to [EXP_LO, EXP_HI].
template <typename F, typename I>
inline void exp_reduce(F xc, F& e, I& n_int) {
    const F t = xc * 1.44269504088896341f + EXP_ROUND;  // n in the low mantissa bits of t
    const F n = t - EXP_ROUND;
    F r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    F p = F{} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    e = p * r * r + r + 1.0f;
    I ti;
    std::memcpy(&ti, &t, sizeof ti);
    const float rf = EXP_ROUND;
    int32_t rb;
    std::memcpy(&rb, &rf, sizeof rb);
    n_int = ti - (I{} + rb);
}

template <typename F, typename I>
inline F pow2(I n) {  // 2^n for n in [-126, 127]
    const I bits = (n + 127) << 23;
    F s;
    std::memcpy(&s, &bits, sizeof s);
    return s;
}

template <typename F, typename I>
inline F exp_poly(F x) {
    F xc = x > EXP_HI ? F{} + EXP_HI : x;  // NaN compares false both ways and passes through
    xc = xc < EXP_LO ? F{} + EXP_LO : xc;
    F e;
    I n;
    exp_reduce(xc, e, n);
    const I half = n >> 1;  // n reaches 128 near EXP_HI: two factors 2^(n/2) * 2^(n - n/2)
    const F inf = F{} + __builtin_inff();
    return x < EXP_LO ? F{} : (x > EXP_HI ? inf : e * pow2<F>(half) * pow2<F>(n - half));
}

template <typename F, typename I>
inline F exp_poly_below_88(F x) {
    const F xc = x < EXP_LO ? F{} + EXP_LO : x;
    F e;
    I n;
    exp_reduce(xc, e, n);
    return x < EXP_LO ? F{} : e * pow2<F>(n);
}

inline float exp_approx(float x) { return exp_poly<float, int32_t>(x); }

inline double exp_approx(double x) { return std::exp(x); }

template <typename T>
inline T sigmoid(T a) {
    return T(1) / (T(1) + exp_approx(-a));
}

}  // namespace tg
