// rmsnorm and its backward (ops/rmsnorm.py), row by row: each [H] row is read from memory once and stays in L1
// for the row's passes.
//   y = x * r * gamma,  r = 1 / sqrt(mean(x^2) + eps)
//   dx = r * (g - xhat * mean(g * xhat)),  g = dy * gamma,  xhat = x * r;   dgamma += dy * xhat (over rows)
#include "vec.h"

namespace tg {

template <typename T>
inline T inv_rms(const T* x, int64_t h, double eps) {
    T ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < h; ++j) ss += x[j] * x[j];
    return T(1) / std::sqrt(ss / T(h) + T(eps));
}

template <typename T>
void rmsnorm(const T* x, const T* gamma, T* y, int64_t rows, int64_t h, double eps) {
    for (int64_t i = 0; i < rows; ++i) {
        const T* xr = x + i * h;
        T* yr = y + i * h;
        const T r = inv_rms(xr, h, eps);
#pragma omp simd
        for (int64_t j = 0; j < h; ++j) yr[j] = xr[j] * r * gamma[j];
    }
}

// dgamma is accumulated into (the caller zeroes it, or passes a per-worker partial).
template <typename T>
void rmsnorm_bwd(const T* x, const T* gamma, const T* dy, T* dx, T* dgamma, int64_t rows, int64_t h, double eps) {
    for (int64_t i = 0; i < rows; ++i) {
        const T* xr = x + i * h;
        const T* dyr = dy + i * h;
        T* dxr = dx + i * h;
        const T r = inv_rms(xr, h, eps);
        T dot = 0;  // sum_j g_j * x_j
#pragma omp simd reduction(+ : dot)
        for (int64_t j = 0; j < h; ++j) dot += dyr[j] * gamma[j] * xr[j];
        // dx = r*g - xhat * r * mean(g*xhat) = r*g - x * (r^3 * dot / H)
        const T k = r * r * r * dot / T(h);
#pragma omp simd
        for (int64_t j = 0; j < h; ++j) {
            dxr[j] = r * dyr[j] * gamma[j] - xr[j] * k;
            dgamma[j] += dyr[j] * xr[j] * r;
        }
    }
}

}  // namespace tg

#define EXPORT(T, suffix) \
    extern "C" void tg_rmsnorm_##suffix(const T* x, const T* gamma, T* y, int64_t rows, int64_t h, double eps) { tg::rmsnorm<T>(x, gamma, y, rows, h, eps); }
EXPORT(float, f32)
EXPORT(double, f64)
#undef EXPORT

#define EXPORT(T, suffix) \
    extern "C" void tg_rmsnorm_bwd_##suffix(const T* x, const T* gamma, const T* dy, T* dx, T* dgamma, int64_t rows, int64_t h, double eps) { tg::rmsnorm_bwd<T>(x, gamma, dy, dx, dgamma, rows, h, eps); }
EXPORT(float, f32)
EXPORT(double, f64)
#undef EXPORT
