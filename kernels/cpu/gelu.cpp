// gelu (tanh approximation, GPT-2's) and its backward (ops/activation.py), one pass each:
//   y = x * sigmoid(2u),  u = c * (x + 0.044715 x^3),  c = sqrt(2/pi)    (0.5 * (1 + tanh u) = sigmoid(2u))
//   dx = dy * (s + x * s * (1 - s) * 2c * (1 + 3 * 0.044715 x^2)),  s = sigmoid(2u)
#include "vec.h"

namespace tg {

template <typename T>
void gelu(const T* x, T* y, int64_t n) {
    const T c2 = T(1.5957691216057308), k = T(0.044715);  // 2 * sqrt(2/pi)
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const T v = x[i];
        y[i] = v * sigmoid(c2 * (v + k * v * v * v));
    }
}

template <typename T>
void gelu_bwd(const T* x, const T* dy, T* dx, int64_t n) {
    const T c2 = T(1.5957691216057308), k = T(0.044715);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const T v = x[i];
        const T s = sigmoid(c2 * (v + k * v * v * v));
        dx[i] = dy[i] * (s + v * s * (T(1) - s) * c2 * (T(1) + T(3) * k * v * v));
    }
}

}  // namespace tg

#define EXPORT(T, suffix) \
    extern "C" void tg_gelu_##suffix(const T* x, T* y, int64_t n) { tg::gelu<T>(x, y, n); }
EXPORT(float, f32)
EXPORT(double, f64)
#undef EXPORT

#define EXPORT(T, suffix) \
    extern "C" void tg_gelu_bwd_##suffix(const T* x, const T* dy, T* dx, int64_t n) { tg::gelu_bwd<T>(x, dy, dx, n); }
EXPORT(float, f32)
EXPORT(double, f64)
#undef EXPORT
