// layernorm and its backward (ops/layernorm.py), row by row like rmsnorm.cpp: each [H] row stays in L1 for its
// passes. Mean first, then the variance of the centred row (two passes: no cancellation of E[x^2] - E[x]^2).
//   xhat = (x - mean) * r,  r = 1 / sqrt(var + eps);  y = xhat * gamma
//   dx = r * (g - mean(g) - xhat * mean(g * xhat)),  g = dy * gamma;   dgamma += dy * xhat (over rows)
#include "vec.h"

namespace tg {

template <typename T>
inline void moments(const T* x, int64_t h, double eps, T& mu, T& r) {
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < h; ++j) s += x[j];
    mu = s / T(h);
    T ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < h; ++j) ss += (x[j] - mu) * (x[j] - mu);
    r = T(1) / std::sqrt(ss / T(h) + T(eps));
}

template <typename T>
void layernorm(const T* x, const T* gamma, T* y, int64_t rows, int64_t h, double eps) {
    for (int64_t i = 0; i < rows; ++i) {
        const T* xr = x + i * h;
        T* yr = y + i * h;
        T mu, r;
        moments(xr, h, eps, mu, r);
#pragma omp simd
        for (int64_t j = 0; j < h; ++j) yr[j] = (xr[j] - mu) * r * gamma[j];
    }
}

// dgamma is accumulated into (the caller zeroes it, or passes a per-worker partial).
template <typename T>
void layernorm_bwd(const T* x, const T* gamma, const T* dy, T* dx, T* dgamma, int64_t rows, int64_t h, double eps) {
    for (int64_t i = 0; i < rows; ++i) {
        const T* xr = x + i * h;
        const T* dyr = dy + i * h;
        T* dxr = dx + i * h;
        T mu, r;
        moments(xr, h, eps, mu, r);
        T sg = 0, sgx = 0;  // sum g, sum g * xhat
#pragma omp simd reduction(+ : sg, sgx)
        for (int64_t j = 0; j < h; ++j) {
            const T g = dyr[j] * gamma[j];
            sg += g;
            sgx += g * (xr[j] - mu) * r;
        }
        const T mg = sg / T(h), mgx = sgx / T(h);
#pragma omp simd
        for (int64_t j = 0; j < h; ++j) {
            const T xhat = (xr[j] - mu) * r;
            dxr[j] = r * (dyr[j] * gamma[j] - mg - xhat * mgx);
            dgamma[j] += dyr[j] * xhat;
        }
    }
}

}  // namespace tg

#define EXPORT(T, suffix) \
    extern "C" void tg_layernorm_##suffix(const T* x, const T* gamma, T* y, int64_t rows, int64_t h, double eps) { tg::layernorm<T>(x, gamma, y, rows, h, eps); }
EXPORT(float, f32)
EXPORT(double, f64)
#undef EXPORT

#define EXPORT(T, suffix) \
    extern "C" void tg_layernorm_bwd_##suffix(const T* x, const T* gamma, const T* dy, T* dx, T* dgamma, int64_t rows, int64_t h, double eps) { tg::layernorm_bwd<T>(x, gamma, dy, dx, dgamma, rows, h, eps); }
EXPORT(float, f32)
EXPORT(double, f64)
#undef EXPORT
