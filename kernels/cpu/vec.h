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
// 0 (no denormals), -inf gives 0, NaN stays NaN, and above ln(FLT_MAX) it is inf.
template <typename F, typename I>
inline F exp_poly(F x) {
    const float hi = 88.7228391117f, lo = -87.3365447504f, round = 12582912.0f;  // 1.5 * 2^23
    F xc = x > hi ? F{} + hi : x;  // NaN compares false both ways and passes through
    xc = xc < lo ? F{} + lo : xc;
    const F t = xc * 1.44269504088896341f + round;  // n in the low mantissa bits of t
    const F n = t - round;
    F r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    F p = F{} + 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const F e = p * r * r + r + 1.0f;
    I ti, rbits;
    const float rf = round;
    std::memcpy(&ti, &t, sizeof ti);
    int32_t rb;
    std::memcpy(&rb, &rf, sizeof rb);
    rbits = I{} + rb;
    // 2^n for n in [-126, 128] as two normal factors 2^(n/2) and 2^(n - n/2) (one would overflow at 128).
    const I n_int = ti - rbits, half = n_int >> 1;
    const I bits1 = (half + 127) << 23, bits2 = (n_int - half + 127) << 23;
    F s1, s2;
    std::memcpy(&s1, &bits1, sizeof s1);
    std::memcpy(&s2, &bits2, sizeof s2);
    const F inf = F{} + __builtin_inff();
    return x < lo ? F{} : (x > hi ? inf : e * s1 * s2);
}

inline float exp_approx(float x) { return exp_poly<float, int32_t>(x); }

inline double exp_approx(double x) { return std::exp(x); }

template <typename T>
inline T sigmoid(T a) {
    return T(1) / (T(1) + exp_approx(-a));
}

}  // namespace tg
