// rope (ops/rope.py), rotate-half convention: per head, pairs (j, j + D/2) rotate by the angle of the row's
// position. Rows are flattened [B*S] positions; the row with global index i is at position i % seq.
//   y1 = x1*cos - x2*sin,  y2 = x2*cos + x1*sin   (sign = -1 rotates backwards: the inverse and the backward)
// y may be x (each pair is read before it is written).
#include "vec.h"

namespace tg {

template <typename T>
void rope(const T* x, T* y, const T* cos, const T* sin, int64_t rows, int64_t first_row, int64_t seq,
          int64_t heads, int64_t half, double sign) {
    const int64_t width = heads * 2 * half;
    const T sg = T(sign);
    for (int64_t i = 0; i < rows; ++i) {
        const int64_t pos = (first_row + i) % seq;
        const T* c = cos + pos * half;
        const T* s = sin + pos * half;
        for (int64_t h = 0; h < heads; ++h) {
            const T* x1 = x + i * width + h * 2 * half;
            const T* x2 = x1 + half;
            T* y1 = y + i * width + h * 2 * half;
            T* y2 = y1 + half;
#pragma omp simd
            for (int64_t j = 0; j < half; ++j) {
                const T a = x1[j], b = x2[j], sn = sg * s[j];
                y1[j] = a * c[j] - b * sn;
                y2[j] = b * c[j] + a * sn;
            }
        }
    }
}

}  // namespace tg

#define EXPORT(T, suffix) \
    extern "C" void tg_rope_##suffix(const T* x, T* y, const T* cos, const T* sin, int64_t rows, int64_t first_row, int64_t seq, int64_t heads, int64_t half, double sign) { tg::rope<T>(x, y, cos, sin, rows, first_row, seq, heads, half, sign); }
EXPORT(float, f32)
EXPORT(double, f64)
#undef EXPORT
