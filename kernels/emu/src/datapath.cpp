// Wormhole B0 datapath numerics (see datapath.h). Behaviour read from the public tt-isa-documentation, the LLK
// headers in the ttnn wheel and Tenstorrent's simulator ttsim (src/tensix.cpp); written here independently and
// checked bit for bit against ttsim by tests/test_emu_ttsim_oracle.py.
#include "datapath.h"

#pragma GCC optimize("O3")  // the matmul loops are written to vectorise

#include <algorithm>
#include <cstring>

namespace tgemu::datapath {

namespace {

// One term of an FPU sum: its magnitude is a significand scaled so that 1.0 is 1 << 23 (up to 27 bits wide).
struct Term {
    uint32_t sign;
    int32_t exp;
    uint32_t man;
};

// Shift a term right by `by` bits to a common exponent, rounding half up; negative terms (bias 1) round half down.
inline uint32_t shift_to(uint32_t man, uint32_t by, uint32_t bias) {
    if (by == 0) return man;
    if (by >= 31) return 0;
    return (man + (1u << (by - 1)) - bias) >> by;
}

// The FPU's accumulator: bring two terms and the old DST datum to the largest of their exponents, add them as
// integers, renormalise to 24 bits (to 8 bits when DST is bf16) with round half up, and encode as fp32 bits.
// Nothing is kept below the common exponent's 24-bit window; underflow gives +0, overflow inf.
thread_local uint64_t erratum_hits = 0;

uint32_t accumulate(Term t0, Term t1, uint32_t dst, bool fp32_dst) {
    const uint32_t dst_sign = dst >> 31;
    const int32_t dst_exp = int32_t((dst >> 23) & 255);
    const uint32_t dst_man = dst_exp ? ((dst & 0x7FFFFFu) | 0x800000u) : 0;
    int32_t exp = std::max(std::max(t0.exp, t1.exp), dst_exp);
    if (exp <= 0) return 0;
    uint32_t m0 = t0.exp < exp ? shift_to(t0.man, uint32_t(exp - t0.exp), t0.sign) : t0.man;
    uint32_t m1 = t1.exp < exp ? shift_to(t1.man, uint32_t(exp - t1.exp), t1.sign) : t1.man;
    uint32_t md = dst_exp < exp ? shift_to(dst_man, uint32_t(exp - dst_exp), 0) : dst_man;
    if (!fp32_dst) {  // a bf16 DST keeps 11 bits of each addend (the low 13 of 24 are rounded off first)
        m0 = (m0 + 0x1000u - t0.sign) & ~0x1FFFu;
        m1 = (m1 + 0x1000u - t1.sign) & ~0x1FFFu;
        md = (md + 0x1000u) & ~0x1FFFu;
    }
    int32_t sum = int32_t(md);
    sum += t0.sign == dst_sign ? int32_t(m0) : -int32_t(m0);
    sum += t1.sign == dst_sign ? int32_t(m1) : -int32_t(m1);
    uint32_t sign = dst_sign;
    if (sum < 0) {
        sum = -sum;
        sign ^= 1;
    }
    if (sum == 0) return 0;  // exact cancellation is +0
    int32_t shift = __builtin_clz(uint32_t(sum)) - 8;  // left shift that puts the leading one at bit 23
    // Wormhole B0's leading-sign count is wrong for a magnitude of exactly 1 on the negative side (all bits set in
    // two's complement): it renormalises as if the shift were -4 (ttsim models the same erratum).
    if (sign && sum == 1) {
        shift -= 27;
        ++erratum_hits;
    }
    exp -= shift;
    if (!fp32_dst) shift -= 16;  // keep 8 significant bits
    uint32_t man = uint32_t(sum);
    if (shift < 0) man = (man + (1u << (-shift - 1))) >> -shift;
    else man <<= shift;
    if (!fp32_dst) man <<= 16;
    if (man & 0x1000000u) exp++;  // rounding carried into a new leading bit
    man &= 0x7FFFFFu;
    if (exp <= 0) return 0;
    if (exp >= 255) return (sign << 31) | 0x7F800000u;
    return (sign << 31) | (uint32_t(exp) << 23) | man;
}

inline uint32_t man11(uint32_t src) { return (src & 0x3FFu) | 0x400u; }
inline int32_t product_exp_bias(uint32_t phase) {
    // Products of two biased exponents carry one extra bias; the low slices weigh 2^-5 (SrcA) and 2^-7 (SrcB).
    return -127 - ((phase & 1) ? 5 : 0) - ((phase & 2) ? 7 : 0);
}

}  // namespace

uint64_t accumulate_erratum_hits() { return erratum_hits; }

uint16_t unpack_bfp8_to_bf16(uint8_t byte, uint8_t shared_exp) {
    const uint32_t sign = byte >> 7;
    uint32_t mag = uint32_t(byte << 1) & 0xFFu;
    if (!mag) return sign ? 0xFF80u : 0;  // a zero magnitude with the sign set is how bfp8 encodes -inf
    uint32_t lz = uint32_t(__builtin_clz(mag)) - 24;
    mag <<= lz;
    const uint32_t exp = uint32_t(shared_exp - lz) & 0xFFu;  // wraps below zero, as the hardware does
    return uint16_t((sign << 15) | (exp << 7) | (mag & 0x7Eu));
}

uint32_t elwadd(uint32_t a, uint32_t b, uint32_t dst, bool fp32_dst, bool accumulate_into_dst) {
    if (src_is_zero(a)) a = 0;
    if (src_is_zero(b)) b = 0;
    if (!accumulate_into_dst) dst = 0;
    if ((a & 0x3FFFFu) < (b & 0x3FFFFu)) std::swap(a, b);  // a has the larger magnitude
    const uint32_t sa = a >> 18, sb = b >> 18;
    const int32_t ea = int32_t((a >> 10) & 255), eb = int32_t((b >> 10) & 255);
    const uint32_t ma = a ? man11(a) : 0;
    uint32_t mb = b ? man11(b) : 0;
    if (eb < ea) {
        const uint32_t d = uint32_t(ea - eb);
        mb = d < 12 ? (mb + (1u << (d - 1))) >> d : 0;  // 11-bit alignment, round half up
    }
    const uint32_t m = sa == sb ? ma + mb : ma - mb;
    return accumulate({sa, ea, m << 13}, {0, 0, 0}, dst, fp32_dst);
}

uint32_t elwmul(uint32_t a, uint32_t b, uint32_t dst, bool fp32_dst, uint32_t phase) {
    const int32_t exp = int32_t((a >> 10) & 255) + int32_t((b >> 10) & 255) + product_exp_bias(phase);
    if (src_is_zero(a) || src_is_zero(b) || exp <= 0) return accumulate({0, 0, 0}, {0, 0, 0}, dst, fp32_dst);
    const uint32_t ma = (phase & 1) ? (man11(a) >> 1) & 31 : man11(a) >> 6;
    const uint32_t mb = (phase & 2) ? (man11(b) & 15) << 3 : man11(b) >> 4;
    return accumulate({((a ^ b) >> 18) & 1, exp, (ma * mb) << 13}, {0, 0, 0}, dst, fp32_dst);
}

Operand split_srca(uint32_t src) {
    if (src_is_zero(src)) return {0, 0, 0, 0, true};
    const uint32_t m = man11(src);
    return {(src >> 18) & 1, int32_t((src >> 10) & 255), m >> 6, (m >> 1) & 31, false};
}
Operand split_srcb(uint32_t src) {
    if (src_is_zero(src)) return {0, 0, 0, 0, true};
    const uint32_t m = man11(src);
    return {(src >> 18) & 1, int32_t((src >> 10) & 255), m >> 4, (m & 15) << 3, false};
}

uint32_t mvmul16_split(const Operand* a, const Operand* b, uint32_t dst, bool fp32_dst, uint32_t phase) {
    const int32_t bias = product_exp_bias(phase);
    const bool a_lo = phase & 1, b_lo = phase & 2;
    Term group[2] = {{0, 0, 0}, {0, 0, 0}};
    for (int g = 0; g < 2; g++) {
        int32_t exps[8];
        int32_t mans[8];
        int32_t top = 0;  // a zero lane counts with exponent 0
        for (int i = 0; i < 8; i++) {
            const Operand& x = a[8 * g + i];
            const Operand& y = b[8 * g + i];
            const bool zero = x.zero || y.zero;
            exps[i] = zero ? 0 : x.exp + y.exp + bias;
            const int32_t m = zero ? 0 : int32_t((a_lo ? x.lo : x.hi) * (b_lo ? y.lo : y.hi));
            mans[i] = (x.sign ^ y.sign) && !zero ? -m : m;
            top = i == 0 ? exps[0] : std::max(top, exps[i]);
        }
        if (top <= 0) continue;  // the whole group underflows
        int32_t sum = 0;
        for (int i = 0; i < 8; i++) {
            const uint32_t d = std::min(uint32_t(top - exps[i]), 30u);
            const int32_t mag = mans[i] < 0 ? -mans[i] : mans[i];
            const int32_t aligned = ((mag << 1) + (1 << d)) >> (d + 1);  // round half up, per lane
            sum += mans[i] < 0 ? -aligned : aligned;
        }
        group[g].sign = sum < 0;
        group[g].man = uint32_t(sum < 0 ? -sum : sum) << 13;
        group[g].exp = top;
    }
    return accumulate(group[0], group[1], dst, fp32_dst);
}

void split_srca_face(const uint32_t* in1, bool transpose, int kf, SrcAFace& out) {
    for (int i = 0; i < 16; i++)
        for (int c = 0; c < 32; c++) {
            const int k = kf * 16 + i;
            const Operand x = split_srca(transpose ? in1[c * 32 + k] : in1[k * 32 + c]);
            out.exp[i][c] = x.exp;
            out.sign[i][c] = int32_t(x.sign);
            out.zero[i][c] = x.zero;
            out.man[0][i][c] = int32_t(x.hi);
            out.man[1][i][c] = int32_t(x.lo);
        }
}

// Same arithmetic as mvmul16_split, one column per SIMD lane (kept branch-free so the compiler vectorises it).
// AVX2 has the per-element variable shifts the lane alignment needs; the default clone runs anywhere.
__attribute__((target_clones("avx2", "default")))
void mvmul_row(const SrcAFace& a, const Operand* b, uint32_t* dst, bool fp32_dst, uint32_t phase) {
    const int32_t bias = product_exp_bias(phase);
    const int a_lo = phase & 1;
    const bool b_lo = phase & 2;
    Term terms[2][32];
    for (int g = 0; g < 2; g++) {
        int32_t exps[8][32], mans[8][32], signs[8][32], top[32];
        for (int i = 0; i < 8; i++) {
            const int lane = 8 * g + i;
            const Operand& y = b[lane];
            const int32_t be = y.exp + bias, bm = int32_t(b_lo ? y.lo : y.hi), bs = int32_t(y.sign), bz = y.zero;
            const int32_t* ae = a.exp[lane];
            const int32_t* am = a.man[a_lo][lane];
            const int32_t* as = a.sign[lane];
            const int32_t* az = a.zero[lane];
            for (int c = 0; c < 32; c++) {
                const int32_t z = az[c] | bz;
                exps[i][c] = z ? 0 : ae[c] + be;
                mans[i][c] = z ? 0 : am[c] * bm;
                signs[i][c] = z ? 0 : as[c] ^ bs;
            }
        }
        for (int c = 0; c < 32; c++) top[c] = exps[0][c];
        for (int i = 1; i < 8; i++)
            for (int c = 0; c < 32; c++) top[c] = std::max(top[c], exps[i][c]);
        int32_t sum[32] = {};
        for (int i = 0; i < 8; i++)
            for (int c = 0; c < 32; c++) {
                const uint32_t d = std::min(uint32_t(top[c] - exps[i][c]), 30u);
                const int32_t aligned = ((mans[i][c] << 1) + (1 << d)) >> (d + 1);
                sum[c] += signs[i][c] ? -aligned : aligned;
            }
        for (int c = 0; c < 32; c++) {
            if (top[c] <= 0) {
                terms[g][c] = {0, 0, 0};
            } else {
                terms[g][c] = {uint32_t(sum[c] < 0), top[c], uint32_t(sum[c] < 0 ? -sum[c] : sum[c]) << 13};
            }
        }
    }
    for (int c = 0; c < 32; c++) dst[c] = accumulate(terms[0][c], terms[1][c], dst[c], fp32_dst);
}

void matmul_tile(const uint32_t* in0, const uint32_t* in1, bool transpose_in1, uint32_t* dst, bool fp32_dst,
                 uint32_t math_fidelity) {
    Operand rows[32][32];  // in0 as SrcB lanes, [r][k]
    for (int r = 0; r < 32; r++)
        for (int k = 0; k < 32; k++) rows[r][k] = split_srcb(in0[r * 32 + k]);
    SrcAFace faces[2];
    split_srca_face(in1, transpose_in1, 0, faces[0]);
    split_srca_face(in1, transpose_in1, 1, faces[1]);
    const uint32_t phases = fidelity_phases(math_fidelity);
    for (int r = 0; r < 32; r++)
        for (uint32_t ph = 0; ph < phases; ph++)
            for (int kf = 0; kf < 2; kf++) mvmul_row(faces[kf], &rows[r][kf * 16], dst + r * 32, fp32_dst, ph);
}

uint32_t mvmul16(const uint32_t* a, const uint32_t* b, uint32_t dst, bool fp32_dst, uint32_t phase) {
    Operand x[16], y[16];
    for (int i = 0; i < 16; i++) {
        x[i] = split_srca(a[i]);
        y[i] = split_srcb(b[i]);
    }
    return mvmul16_split(x, y, dst, fp32_dst, phase);
}

uint32_t gmpool_max(uint32_t running, uint32_t src) {
    uint32_t v = src_to_fp32_bits(src);
    if (!(v & 0x7F800000u)) v = 0;
    auto order = [](uint32_t x) { return int32_t(x & 0x80000000u ? x ^ 0x7FFFFFFFu : x); };
    return order(v) > order(running) ? v : running;
}

uint16_t pack_bf16(uint32_t v, bool fp32_dst) {
    uint32_t h;
    if (fp32_dst) {
        if ((v & 0x7FFFFFFFu) > 0x7F800000u) v = (v & 0x80000000u) | 0x7F800000u;
        h = (v + 0x8000u) >> 16;
        if ((h & 0x7FFFu) < 0x80u) h = 0;
    } else {
        h = v >> 16;
        if ((h & 0x7FFFu) > 0x7F80u) h = (h & 0x8000u) | 0x7F80u;
        else if ((h & 0x7FFFu) < 0x80u) h = 0;
    }
    return uint16_t(h);
}

void pack_bfp8_group(const uint32_t* dst_bits, bool fp32_dst, uint8_t* shared_exp, uint8_t* mantissas) {
    uint32_t h[16];
    uint32_t top = 0;
    for (int i = 0; i < 16; i++) {
        uint32_t v = dst_bits[i];
        uint32_t x;
        if (fp32_dst) {
            if ((v & 0x7FFFFFFFu) > 0x7F800000u) v = (v & 0x80000000u) | 0x7F800000u;
            x = ((v >> 16) + 1) & ~1u;  // bf16 rounded to 6 mantissa bits, ties up
            if ((x & 0x7FFFu) < 0x80u) x = 0;
        } else {
            x = v >> 16;
            if ((x & 0x7FFFu) > 0x7F80u) x = (x & 0x8000u) | 0x7F80u;
            else if ((x & 0x7FFFu) < 0x80u) x = 0;
            x = (x + 1) & ~1u;
        }
        h[i] = x;
        top = std::max(top, (x >> 7) & 255);  // exponent 255 (inf) counts as a large normal
    }
    *shared_exp = uint8_t(top);
    for (int i = 0; i < 16; i++) {
        const uint32_t e = (h[i] >> 7) & 255;
        uint32_t m = (h[i] & 127) | (e ? 128u : 0u);
        const uint32_t shift = top - e;
        if (shift >= 8) {
            m = 0;
        } else {
            m = (m + (1u << shift)) >> (shift + 1);
            if (m == 128) m = 127;  // a round up past the top saturates
        }
        // The sign is stored only with a nonzero magnitude: sign + zero magnitude encodes -inf.
        mantissas[i] = uint8_t(m ? ((h[i] >> 15) << 7) | m : 0);
    }
}

// Face f (of four 16x16), face row r holds row-major elements ((f / 2) * 16 + r, (f % 2) * 16 .. +16); bfloat8_b
// keeps 64 shared exponents (face f, row r at f * 16 + r) ahead of its 1024 sign/magnitude bytes.
void unpack_tile_to_src(uint32_t fmt, const uint8_t* l1, bool tf32, uint32_t* out) {
    for (int f = 0; f < 4; f++)
        for (int r = 0; r < 16; r++) {
            uint32_t* row = out + ((f >> 1) * 16 + r) * 32 + (f & 1) * 16;
            const int at = f * 256 + r * 16;
            if (fmt == 0) {
                for (int i = 0; i < 16; i++) {
                    uint32_t u;
                    std::memcpy(&u, l1 + size_t(at + i) * 4, 4);
                    row[i] = unpack_fp32_to_src(u, tf32);
                }
            } else if (fmt == 5) {
                for (int i = 0; i < 16; i++) {
                    uint16_t h;
                    std::memcpy(&h, l1 + size_t(at + i) * 2, 2);
                    row[i] = unpack_bf16_to_src(h);
                }
            } else {
                for (int i = 0; i < 16; i++) row[i] = unpack_bf16_to_src(unpack_bfp8_to_bf16(l1[64 + at + i], l1[f * 16 + r]));
            }
        }
}

void pack_tile_from_dst(uint32_t fmt, const uint32_t* dst, bool fp32_dst, uint8_t* l1) {
    for (int f = 0; f < 4; f++)
        for (int r = 0; r < 16; r++) {
            const uint32_t* row = dst + ((f >> 1) * 16 + r) * 32 + (f & 1) * 16;
            const int at = f * 256 + r * 16;
            if (fmt == 0) {
                for (int i = 0; i < 16; i++) {
                    // fp32 DST is written out as is; a bf16 DST goes through the bf16 conversion, then widens.
                    const uint32_t u = fp32_dst ? row[i] : uint32_t(pack_bf16(row[i], false)) << 16;
                    std::memcpy(l1 + size_t(at + i) * 4, &u, 4);
                }
            } else if (fmt == 5) {
                for (int i = 0; i < 16; i++) {
                    const uint16_t h = pack_bf16(row[i], fp32_dst);
                    std::memcpy(l1 + size_t(at + i) * 2, &h, 2);
                }
            } else {
                pack_bfp8_group(row, fp32_dst, l1 + f * 16 + r, l1 + 64 + at);
            }
        }
}

}  // namespace tgemu::datapath

// C entry points for the oracle tests (ctypes): one datum per call, bit patterns in and out.
extern "C" {
uint32_t tgemu_dp_elwadd(uint32_t a, uint32_t b, uint32_t dst, int fp32_dst, int accumulate) {
    return tgemu::datapath::elwadd(a, b, dst, fp32_dst, accumulate);
}
uint32_t tgemu_dp_elwsub(uint32_t a, uint32_t b, uint32_t dst, int fp32_dst, int accumulate) {
    return tgemu::datapath::elwsub(a, b, dst, fp32_dst, accumulate);
}
uint32_t tgemu_dp_elwmul(uint32_t a, uint32_t b, uint32_t dst, int fp32_dst, uint32_t phase) {
    return tgemu::datapath::elwmul(a, b, dst, fp32_dst, phase);
}
uint32_t tgemu_dp_mvmul(const uint32_t* a, const uint32_t* b, uint32_t dst, int fp32_dst, uint32_t phase) {
    return tgemu::datapath::mvmul16(a, b, dst, fp32_dst, phase);
}
uint16_t tgemu_dp_unpack_bfp8(uint8_t byte, uint8_t shared_exp) {
    return tgemu::datapath::unpack_bfp8_to_bf16(byte, shared_exp);
}
uint32_t tgemu_dp_unpack_fp32(uint32_t bits, int tf32) { return tgemu::datapath::unpack_fp32_to_src(bits, tf32); }
uint16_t tgemu_dp_pack_bf16(uint32_t dst_bits, int fp32_dst) { return tgemu::datapath::pack_bf16(dst_bits, fp32_dst); }
void tgemu_dp_pack_bfp8(const uint32_t* dst_bits, int fp32_dst, uint8_t* shared_exp, uint8_t* mantissas) {
    tgemu::datapath::pack_bfp8_group(dst_bits, fp32_dst, shared_exp, mantissas);
}
}

// Batched form for the oracle tests (same op codes as tests/ttsim_oracle/harness.cpp's oracle_batch).
extern "C" void tgemu_dp_batch(int op, uint64_t n, const uint32_t* a, const uint32_t* b, const uint32_t* dst,
                               int fp32_dst, uint32_t mode, uint32_t* out) {
    namespace dp = tgemu::datapath;
    for (uint64_t i = 0; i < n; i++) {
        switch (op) {
            case 0: out[i] = dp::elwadd(a[i], b[i], dst[i], fp32_dst, mode); break;
            case 1: out[i] = dp::elwsub(a[i], b[i], dst[i], fp32_dst, mode); break;
            case 2: out[i] = dp::elwmul(a[i], b[i], dst[i], fp32_dst, mode); break;
            case 3: out[i] = dp::mvmul16(a + 16 * i, b + 16 * i, dst[i], fp32_dst, mode); break;
            case 5:  // one tile matmul per 1024 data: a = in0, b = in1, mode = fidelity | transpose << 8
                if (i % 1024 == 0) {
                    std::memcpy(out + i, dst + i, 4096);
                    dp::matmul_tile(a + i, b + i, mode >> 8, out + i, fp32_dst, mode & 255);
                }
                break;
            default: out[i] = dp::unpack_bfp8_to_bf16(uint8_t(a[i]), uint8_t(b[i])); break;
        }
    }
}
