// adamw (ops/optimizer.py), one pass over param, grad, m, v. The outputs may be the inputs themselves (state
// updated in place): every element is read before it is written.
//   g = grad * gs;  m' = b1*m + (1-b1)*g;  v' = b2*v + (1-b2)*g^2
//   p' = p*(1 - lr*wd) - (lr/bc1) * m' / (sqrt(v'/bc2) + eps)       (bc = 1 - beta^step)
#include "vec.h"

namespace tg {

template <typename T>
void adamw(const T* p, const T* grad, const T* m, const T* v, T* p_out, T* m_out, T* v_out, int64_t n, double gs,
           double lr, double b1, double b2, double eps, double wd, double bc1, double bc2) {
    const T g1 = T(gs * (1 - b1)), g2 = T(gs * gs * (1 - b2)), tb1 = T(b1), tb2 = T(b2);
    const T inv_bc2 = T(1 / bc2), step = T(-lr / bc1), decay = T(1 - lr * wd), teps = T(eps);
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
        const T gi = grad[i];
        const T mi = tb1 * m[i] + g1 * gi;
        const T vi = tb2 * v[i] + g2 * gi * gi;
        const T pi = p[i] * decay + step * mi / (std::sqrt(vi * inv_bc2) + teps);
        m_out[i] = mi;
        v_out[i] = vi;
        p_out[i] = pi;
    }
}

}  // namespace tg

#define EXPORT(T, suffix) \
    extern "C" void tg_adamw_##suffix(const T* p, const T* grad, const T* m, const T* v, T* p_out, T* m_out, T* v_out, int64_t n, double gs, double lr, double b1, double b2, double eps, double wd, double bc1, double bc2) { tg::adamw<T>(p, grad, m, v, p_out, m_out, v_out, n, gs, lr, b1, b2, eps, wd, bc1, bc2); }
EXPORT(float, f32)
EXPORT(double, f64)
#undef EXPORT
