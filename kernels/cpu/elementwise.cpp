// silu_mul and its backward (ops/elementwise.py), one pass each:
//   y = silu(a) * b,  silu(a) = a * sigmoid(a)
//   da = dy * b * s * (1 + a * (1 - s)),  db = dy * silu(a),  s = sigmoid(a)
#include "vec.h"

namespace tg {

// exp itself, the approximation every kernel uses (exported so that tests measure its error directly).
template <typename T>
void exp(const T* x, T* y, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = exp_approx(x[i]);
}

template <typename T>
void silu_mul(const T* a, const T* b, T* y, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        y[i] = a[i] * sigmoid(a[i]) * b[i];
    }
}

template <typename T>
void silu_mul_bwd(const T* a, const T* b, const T* dy, T* da, T* db, int64_t n) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const T s = sigmoid(a[i]);
        const T silu = a[i] * s;
        da[i] = dy[i] * b[i] * (s + silu * (T(1) - s));
        db[i] = dy[i] * silu;
    }
}

}  // namespace tg

#define EXPORT(T, suffix) \
    extern "C" void tg_exp_##suffix(const T* x, T* y, int64_t n) { tg::exp<T>(x, y, n); }
EXPORT(float, f32)
EXPORT(double, f64)
#undef EXPORT

#define EXPORT(T, suffix) \
    extern "C" void tg_silu_mul_##suffix(const T* a, const T* b, T* y, int64_t n) { tg::silu_mul<T>(a, b, y, n); }
EXPORT(float, f32)
EXPORT(double, f64)
#undef EXPORT

#define EXPORT(T, suffix) \
    extern "C" void tg_silu_mul_bwd_##suffix(const T* a, const T* b, const T* dy, T* da, T* db, int64_t n) { tg::silu_mul_bwd<T>(a, b, dy, da, db, n); }
EXPORT(float, f32)
EXPORT(double, f64)
#undef EXPORT
