// Causal (or full) attention for the CPU, forward and backward (ops/attention.py), with grouped-query heads.
//
// Activations are [B, S, heads*D] (heads in the last dim), lse is [B, heads, S]. One work item is one
// (batch element, kv head) pair: the query heads that share that kv head, so dK and dV are accumulated by one
// thread and items can run on any worker. Per query head the rows go in blocks of ROWS:
//   forward:   S = Q K^T (keys 0..kend), P = exp(scale*S - m) masked, l = rowsum(P), O = P V / l,
//              lse = scale*m + log(l)                     (exact softmax per block of whole rows: no online rescale)
//   backward:  P = exp(scale*Q K^T - lse) masked, dP = dO V^T, dS = scale * P * (dP - rowsum(dO*O)),
//              dQ = dS K, dK += dS^T Q, dV += P^T dO
// Dropout of the probabilities (ops/attention.py `dropout`; drop_threshold 0 = none) draws ops/dropout.py's mask:
// element (b, h, i, j) is kept when splitmix64(index * GOLDEN + key) >> 11 >= drop_threshold, index the flat
// [B, heads, S, S] position, key and drop_threshold = ceil(p * 2^53) computed in Python from (seed, salt, step) and
// p, so kernel and reference keep the same elements. The forward scales P V by mask / (1-p) after l (lse stays the
// undropped one); the backward uses mask * P / (1-p) for dV and mask * dP / (1-p) for dS, while rowsum(dO*O) still
// equals rowsum(P * dP) because O is the dropped output.
// kend is the block's last row + 1 when causal (keys past it are masked for every row of the block), else S.
// With a sliding window W (0 = none) row i sees keys i-W+1 .. i: a block computes only keys k0 .. kend, k0 the
// first key its first row sees rounded down to a whole vector, and masks the keys outside each row's window.
//
// Every product is one small GEMM shape, C[M, vectors] (+)= sum_k a(i, k) * B[k, vectors]: a is read as
// broadcast scalars with any strides, B and C in rows of whole SIMD vectors (keys or head dims padded to a
// vector). gemm() tiles C into register blocks; at head_dim 32 these beat BLAS, whose packing costs more than
// the product at K = 32 (measured: Q K^T of 64 rows x 256 keys at ~50 GFLOP/s in OpenBLAS, one core).
#include <algorithm>
#include <type_traits>
#include <vector>

#include "vec.h"

namespace tg {
namespace {

constexpr int64_t ROWS = 32;  // query rows per block: small enough that the causal triangle wastes little

#ifdef __AVX512F__
constexpr int VECTOR_BYTES = 64, REGISTERS = 32;
#else
constexpr int VECTOR_BYTES = 32, REGISTERS = 16;
#endif

template <typename T>
struct Simd {
    typedef T vec __attribute__((vector_size(VECTOR_BYTES)));
    typedef std::conditional_t<sizeof(T) == 4, int32_t, int64_t> lane_int;
    typedef lane_int ivec __attribute__((vector_size(VECTOR_BYTES)));
    static constexpr int64_t lanes = VECTOR_BYTES / sizeof(T);
    static ivec lane_index() {
        ivec idx;
        for (int64_t l = 0; l < lanes; ++l) idx[l] = lane_int(l);
        return idx;
    }
    static vec exp(vec x);
    static T sum(vec v) {
        T s = 0;
        for (int64_t l = 0; l < lanes; ++l) s += v[l];
        return s;
    }
    static vec load(const T* p) {
        vec v;
        __builtin_memcpy(&v, p, sizeof v);
        return v;
    }
    static void store(T* p, vec v) { __builtin_memcpy(p, &v, sizeof v); }
};

template <>  // softmax arguments are <= 0 (scores minus the row max, or minus lse)
Simd<float>::vec Simd<float>::exp(vec x) { return exp_poly_below_88<vec, ivec>(x); }
template <>
Simd<double>::vec Simd<double>::exp(vec x) {  // float64 runs checks, not training: libm per lane
    for (int64_t l = 0; l < lanes; ++l) x[l] = std::exp(x[l]);
    return x;
}

inline int64_t round_up(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// C[RB rows, VB vectors] (+)= sum_k a[i*sai + k*sak] * B[k*ldb + vector], kept in registers.
template <typename T, int RB, int VB>
inline void tile(const T* a, int64_t sai, int64_t sak, int64_t kn, const T* b, int64_t ldb, T* c, int64_t ldc,
                 bool accumulate) {
    using S = Simd<T>;
    typename S::vec acc[RB][VB] = {};
    for (int64_t k = 0; k < kn; ++k) {
        typename S::vec bv[VB];
        for (int v = 0; v < VB; ++v) bv[v] = S::load(b + k * ldb + v * S::lanes);
        for (int r = 0; r < RB; ++r) {
            const T ar = a[r * sai + k * sak];
            for (int v = 0; v < VB; ++v) acc[r][v] += ar * bv[v];
        }
    }
    for (int r = 0; r < RB; ++r)
        for (int v = 0; v < VB; ++v) {
            T* out = c + r * ldc + v * S::lanes;
            S::store(out, accumulate ? S::load(out) + acc[r][v] : acc[r][v]);
        }
}

// The last rows < RB rows of a gemm_cols, as one tile of exactly that many rows (rows one at a time would be
// bound by the loads of B).
template <typename T, int R, int VB>
inline void remainder_tile(int64_t rows, const T* a, int64_t sai, int64_t sak, int64_t kn, const T* b, int64_t ldb,
                           T* c, int64_t ldc, bool accumulate) {
    if constexpr (R > 0) {
        if (rows == R) return tile<T, R, VB>(a, sai, sak, kn, b, ldb, c, ldc, accumulate);
        remainder_tile<T, R - 1, VB>(rows, a, sai, sak, kn, b, ldb, c, ldc, accumulate);
    }
}

// Register blocks: VB vectors wide, RB rows tall, RB * VB accumulators plus VB loads within the register file.
template <typename T, int VB>
void gemm_cols(int64_t m, const T* a, int64_t sai, int64_t sak, int64_t kn, const T* b, int64_t ldb, T* c,
               int64_t ldc, bool accumulate) {
    constexpr int RB = std::max(1, std::min(8, (REGISTERS - VB - 2) / VB));
    int64_t i = 0;
    for (; i + RB <= m; i += RB) tile<T, RB, VB>(a + i * sai, sai, sak, kn, b, ldb, c + i * ldc, ldc, accumulate);
    remainder_tile<T, RB - 1, VB>(m - i, a + i * sai, sai, sak, kn, b, ldb, c + i * ldc, ldc, accumulate);
}

// C[m, nvec vectors] (+)= A(m x kn) B(kn x nvec vectors).
template <typename T>
void gemm(int64_t m, int64_t nvec, const T* a, int64_t sai, int64_t sak, int64_t kn, const T* b, int64_t ldb, T* c,
          int64_t ldc, bool accumulate) {
    const int64_t L = Simd<T>::lanes;
    int64_t v = 0;
    for (; v + 4 <= nvec; v += 4) gemm_cols<T, 4>(m, a, sai, sak, kn, b + v * L, ldb, c + v * L, ldc, accumulate);
    for (; v + 2 <= nvec; v += 2) gemm_cols<T, 2>(m, a, sai, sak, kn, b + v * L, ldb, c + v * L, ldc, accumulate);
    for (; v < nvec; ++v) gemm_cols<T, 1>(m, a, sai, sak, kn, b + v * L, ldb, c + v * L, ldc, accumulate);
}

// Per-thread scratch, grown on demand and reused (the Python workers are long-lived threads).
template <typename T>
T* scratch(std::vector<T>& buf, int64_t n) {
    if (static_cast<int64_t>(buf.size()) < n) buf.resize(n);
    return buf.data();
}

template <typename T>
struct Shapes {
    int64_t s, heads, kv_heads, d, group, width, kv_width, s_pad, d_pad;
    Shapes(int64_t s_, int64_t heads_, int64_t kv_heads_, int64_t d_)
        : s(s_), heads(heads_), kv_heads(kv_heads_), d(d_), group(heads_ / kv_heads_), width(heads_ * d_),
          kv_width(kv_heads_ * d_), s_pad(round_up(s_, Simd<T>::lanes)), d_pad(round_up(d_, Simd<T>::lanes)) {}
};

// dst[D, s_pad] = head h of x [S, ld]^T, zero beyond S (keys as the vector dimension).
template <typename T>
void transpose_head(const T* x, int64_t ld, const Shapes<T>& sh, T* dst) {
    constexpr int64_t B = 8;  // rows per block: each destination row gets 8 contiguous keys at a time
    int64_t i0 = 0;
    for (; i0 + B <= sh.s; i0 += B)
        for (int64_t j = 0; j < sh.d; ++j)
            for (int64_t ii = 0; ii < B; ++ii) dst[j * sh.s_pad + i0 + ii] = x[(i0 + ii) * ld + j];
    for (int64_t j = 0; j < sh.d; ++j) {
        for (int64_t i = i0; i < sh.s; ++i) dst[j * sh.s_pad + i] = x[i * ld + j];
        std::fill(dst + j * sh.s_pad + sh.s, dst + (j + 1) * sh.s_pad, T(0));
    }
}

// dst[S, d_pad] = head of x [S, ld], zero beyond D (head dims as the vector dimension).
template <typename T>
void pad_head(const T* x, int64_t ld, const Shapes<T>& sh, T* dst) {
    for (int64_t i = 0; i < sh.s; ++i) {
        std::copy(x + i * ld, x + i * ld + sh.d, dst + i * sh.d_pad);
        std::fill(dst + i * sh.d_pad + sh.d, dst + (i + 1) * sh.d_pad, T(0));
    }
}

// max of x[0..n), n >= 1 (lane-wise in vectors: a scalar max chain waits on every compare).
template <typename T>
T row_max(const T* x, int64_t n) {
    using S = Simd<T>;
    T m = x[0];
    int64_t j = 0;
    if (n >= S::lanes) {
        typename S::vec acc = S::load(x);
        for (j = S::lanes; j + S::lanes <= n; j += S::lanes) {
            const typename S::vec v = S::load(x + j);
            acc = acc > v ? acc : v;
        }
        for (int64_t l = 0; l < S::lanes; ++l) m = std::max(m, acc[l]);
    }
    for (; j < n; ++j) m = std::max(m, x[j]);
    return m;
}

inline int64_t visible_keys(int64_t row, int64_t kend, int64_t causal) {
    return causal ? std::min(kend, row + 1) : kend;
}

inline int64_t first_visible_key(int64_t row, int64_t window) { return window ? std::max<int64_t>(0, row - window + 1) : 0; }

// The dropout mask of ops/dropout.py: splitmix64's finalizer of index * GOLDEN + key, its top 53 bits against
// ceil(p * 2^53).
struct DropMask {
    uint64_t key, threshold;
    double keep_scale;  // 1 / (1 - p)
    bool on() const { return threshold != 0; }
    static uint64_t mix(uint64_t z) {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    bool keep(uint64_t index) const { return (mix(index * 0x9E3779B97F4A7C15ull + key) >> 11) >= threshold; }
    // keep_scale or 0 per lane for elements index0 + lane.
    template <typename T>
    typename Simd<T>::vec lanes(uint64_t index0) const {
        typename Simd<T>::vec m;
        for (int64_t l = 0; l < Simd<T>::lanes; ++l) m[l] = keep(index0 + uint64_t(l)) ? T(keep_scale) : T(0);
        return m;
    }
};

// Per-thread scratch buffers of the attention kernels, one set per element type.
struct Scratch {
    std::vector<float> f[8];
    std::vector<double> d[8];
    template <typename T>
    std::vector<T>* bufs();
};
template <>
std::vector<float>* Scratch::bufs<float>() { return f; }
template <>
std::vector<double>* Scratch::bufs<double>() { return d; }
thread_local Scratch fwd_scratch, bwd_scratch;

template <typename T>
void attention_fwd(const T* q, const T* k, const T* v, T* o, T* lse, int64_t s, int64_t heads, int64_t kv_heads,
                   int64_t d, double scale_, int64_t causal, int64_t window, const DropMask& drop, int64_t item0,
                   int64_t item1) {
    using S = Simd<T>;
    const Shapes<T> sh(s, heads, kv_heads, d);
    const int64_t L = S::lanes;
    const T scale = T(scale_);
    std::vector<T>* buf = fwd_scratch.bufs<T>();
    T* kt = scratch(buf[0], sh.d * sh.s_pad);    // K^T of the kv head
    T* vp = scratch(buf[1], sh.s * sh.d_pad);    // V, head dims padded
    T* sc = scratch(buf[2], ROWS * sh.s_pad);    // scores, then P, of one row block
    T* ob = scratch(buf[3], ROWS * sh.d_pad);    // unnormalised output rows of the block
    for (int64_t item = item0; item < item1; ++item) {
        const int64_t b = item / kv_heads, kvh = item % kv_heads;
        const int64_t base = b * s;
        transpose_head(k + base * sh.kv_width + kvh * d, sh.kv_width, sh, kt);
        pad_head(v + base * sh.kv_width + kvh * d, sh.kv_width, sh, vp);
        for (int64_t h = kvh * sh.group; h < (kvh + 1) * sh.group; ++h) {
            const T* qh = q + base * sh.width + h * d;
            T* oh = o + base * sh.width + h * d;
            T* lh = lse + (b * heads + h) * s;
            for (int64_t r0 = 0; r0 < s; r0 += ROWS) {
                const int64_t rb = std::min(ROWS, s - r0);
                const int64_t kend = causal ? r0 + rb : s;
                const int64_t k0 = first_visible_key(r0, window) / L * L;
                const int64_t kpad = round_up(kend, L);
                gemm(rb, (kpad - k0) / L, qh + r0 * sh.width, sh.width, 1, d, kt + k0, sh.s_pad, sc + k0, sh.s_pad,
                     false);
                // Softmax of each row over its visible keys; the loops run over whole vectors (k0 .. kpad),
                // masking the rest to 0, so no scalar remainder loop runs exp.
                T inv_l[ROWS];
                for (int64_t i = 0; i < rb; ++i) {
                    T* row = sc + i * sh.s_pad;
                    const int64_t n = visible_keys(r0 + i, kend, causal), first = first_visible_key(r0 + i, window);
                    const T m = row_max(row + first, n - first);
                    typename S::vec lv = {};
                    for (int64_t j = k0; j < kpad; j += L) {
                        typename S::vec e = S::exp(scale * (S::load(row + j) - m));
                        const typename S::ivec key = S::lane_index() + typename S::lane_int(j);
                        e = (key < typename S::lane_int(n)) & (key >= typename S::lane_int(first)) ? e : 0;
                        S::store(row + j, e);
                        lv += e;
                    }
                    const T l = S::sum(lv);
                    lh[r0 + i] = scale * m + std::log(l);
                    inv_l[i] = T(1) / l;
                    if (drop.on()) {  // after l: the mask scales what reaches V, not the normalisation
                        const uint64_t index0 = (uint64_t(b * heads + h) * s + uint64_t(r0 + i)) * s;
                        for (int64_t j = k0; j < kpad; j += L)
                            S::store(row + j, S::load(row + j) * drop.lanes<T>(index0 + j));
                    }
                }
                gemm(rb, sh.d_pad / L, sc + k0, sh.s_pad, 1, kend - k0, vp + k0 * sh.d_pad, sh.d_pad, ob, sh.d_pad,
                     false);
                for (int64_t i = 0; i < rb; ++i) {
                    T* out = oh + (r0 + i) * sh.width;
                    const T* src = ob + i * sh.d_pad;
                    for (int64_t j = 0; j < d; ++j) out[j] = src[j] * inv_l[i];
                }
            }
        }
    }
}

template <typename T>
void attention_bwd(const T* q, const T* k, const T* v, const T* o, const T* lse, const T* dout, T* dq, T* dk, T* dv,
                   int64_t s, int64_t heads, int64_t kv_heads, int64_t d, double scale_, int64_t causal,
                   int64_t window, const DropMask& drop, int64_t item0, int64_t item1) {
    using S = Simd<T>;
    const Shapes<T> sh(s, heads, kv_heads, d);
    const int64_t L = S::lanes;
    const T scale = T(scale_);
    std::vector<T>* ba = bwd_scratch.bufs<T>();
    std::vector<T>* bb = ba + 4;
    T* kt = scratch(ba[0], sh.d * sh.s_pad);  // K^T (for S = Q K^T)
    T* vt = scratch(ba[1], sh.d * sh.s_pad);  // V^T (for dP = dO V^T)
    T* kp = scratch(ba[2], sh.s * sh.d_pad);  // K padded (for dQ = dS K)
    T* acc = scratch(ba[3], 2 * sh.s * sh.d_pad);  // dK, dV of the kv head, padded
    T* dka = acc, *dva = acc + sh.s * sh.d_pad;
    T* qp = scratch(bb[0], 2 * sh.s * sh.d_pad);  // Q and dO of the query head, padded
    T* dop = qp + sh.s * sh.d_pad;
    T* pb = scratch(bb[1], 2 * ROWS * sh.s_pad);  // P and dS of one row block
    T* dsb = pb + ROWS * sh.s_pad;
    T* dqb = scratch(bb[2], ROWS * sh.d_pad);
    T* delta = scratch(bb[3], sh.s);
    for (int64_t item = item0; item < item1; ++item) {
        const int64_t b = item / kv_heads, kvh = item % kv_heads;
        const int64_t base = b * s;
        const T* kh = k + base * sh.kv_width + kvh * d;
        const T* vh = v + base * sh.kv_width + kvh * d;
        transpose_head(kh, sh.kv_width, sh, kt);
        transpose_head(vh, sh.kv_width, sh, vt);
        pad_head(kh, sh.kv_width, sh, kp);
        std::fill(acc, acc + 2 * sh.s * sh.d_pad, T(0));
        for (int64_t h = kvh * sh.group; h < (kvh + 1) * sh.group; ++h) {
            const int64_t off = base * sh.width + h * d;
            pad_head(q + off, sh.width, sh, qp);
            pad_head(dout + off, sh.width, sh, dop);
            const T* lh = lse + (b * heads + h) * s;
            for (int64_t i = 0; i < s; ++i) {
                T t = 0;
                const T* dor = dout + off + i * sh.width;
                const T* orow = o + off + i * sh.width;
#pragma omp simd reduction(+ : t)
                for (int64_t j = 0; j < d; ++j) t += dor[j] * orow[j];
                delta[i] = t;
            }
            for (int64_t r0 = 0; r0 < s; r0 += ROWS) {
                const int64_t rb = std::min(ROWS, s - r0);
                const int64_t kend = causal ? r0 + rb : s;
                const int64_t k0 = first_visible_key(r0, window) / L * L;
                const int64_t kvec = (round_up(kend, L) - k0) / L;
                gemm(rb, kvec, qp + r0 * sh.d_pad, sh.d_pad, 1, d, kt + k0, sh.s_pad, pb + k0, sh.s_pad, false);
                gemm(rb, kvec, dop + r0 * sh.d_pad, sh.d_pad, 1, d, vt + k0, sh.s_pad, dsb + k0, sh.s_pad, false);
                for (int64_t i = 0; i < rb; ++i) {  // whole vectors, masked (as in the forward)
                    T* pr = pb + i * sh.s_pad;
                    T* dr = dsb + i * sh.s_pad;
                    const int64_t n = visible_keys(r0 + i, kend, causal), first = first_visible_key(r0 + i, window);
                    const T shift = lh[r0 + i], di = delta[r0 + i];
                    const uint64_t index0 = (uint64_t(b * heads + h) * s + uint64_t(r0 + i)) * s;
                    for (int64_t j = k0; j < k0 + kvec * L; j += L) {
                        typename S::vec p = S::exp(scale * S::load(pr + j) - shift);
                        const typename S::ivec key = S::lane_index() + typename S::lane_int(j);
                        p = (key < typename S::lane_int(n)) & (key >= typename S::lane_int(first)) ? p : 0;
                        if (drop.on()) {  // pb holds mask*P/(1-p) for dV; dP = mask*(dO V^T)/(1-p)
                            const typename S::vec mk = drop.lanes<T>(index0 + j);
                            S::store(pr + j, p * mk);
                            S::store(dr + j, scale * p * (S::load(dr + j) * mk - di));
                        } else {
                            S::store(pr + j, p);
                            S::store(dr + j, scale * p * (S::load(dr + j) - di));
                        }
                    }
                }
                // dQ rows = dS K
                gemm(rb, sh.d_pad / L, dsb + k0, sh.s_pad, 1, kend - k0, kp + k0 * sh.d_pad, sh.d_pad, dqb, sh.d_pad,
                     false);
                for (int64_t i = 0; i < rb; ++i)
                    std::copy(dqb + i * sh.d_pad, dqb + i * sh.d_pad + d, dq + off + (r0 + i) * sh.width);
                // dV[:kend] += P^T dO,  dK[:kend] += dS^T Q  (a read transposed: a(key, row) = P[row, key])
                gemm(kend - k0, sh.d_pad / L, pb + k0, 1, sh.s_pad, rb, dop + r0 * sh.d_pad, sh.d_pad,
                     dva + k0 * sh.d_pad, sh.d_pad, true);
                gemm(kend - k0, sh.d_pad / L, dsb + k0, 1, sh.s_pad, rb, qp + r0 * sh.d_pad, sh.d_pad,
                     dka + k0 * sh.d_pad, sh.d_pad, true);
            }
        }
        for (int64_t i = 0; i < s; ++i) {
            const int64_t at = (base + i) * sh.kv_width + kvh * d;
            std::copy(dka + i * sh.d_pad, dka + i * sh.d_pad + d, dk + at);
            std::copy(dva + i * sh.d_pad, dva + i * sh.d_pad + d, dv + at);
        }
    }
}

}  // namespace
}  // namespace tg

#define EXPORT(T, suffix)                                                                                          \
    extern "C" void tg_attention_fwd_##suffix(const T* q, const T* k, const T* v, T* o, T* lse, int64_t s,         \
                                              int64_t heads, int64_t kv_heads, int64_t d, double scale,            \
                                              int64_t causal, int64_t window, int64_t drop_key,                    \
                                              int64_t drop_threshold, double keep_scale, int64_t item0,            \
                                              int64_t item1) {                                                     \
        const tg::DropMask drop{uint64_t(drop_key), uint64_t(drop_threshold), keep_scale};                        \
        tg::attention_fwd<T>(q, k, v, o, lse, s, heads, kv_heads, d, scale, causal, window, drop, item0, item1);   \
    }                                                                                                              \
    extern "C" void tg_attention_bwd_##suffix(const T* q, const T* k, const T* v, const T* o, const T* lse,        \
                                              const T* dout, T* dq, T* dk, T* dv, int64_t s, int64_t heads,        \
                                              int64_t kv_heads, int64_t d, double scale, int64_t causal,           \
                                              int64_t window, int64_t drop_key, int64_t drop_threshold,            \
                                              double keep_scale, int64_t item0, int64_t item1) {                   \
        const tg::DropMask drop{uint64_t(drop_key), uint64_t(drop_threshold), keep_scale};                        \
        tg::attention_bwd<T>(q, k, v, o, lse, dout, dq, dk, dv, s, heads, kv_heads, d, scale, causal, window,      \
                             drop, item0, item1);                                                                  \
    }
EXPORT(float, f32)
EXPORT(double, f64)
#undef EXPORT
