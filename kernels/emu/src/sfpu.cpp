// Wormhole B0 SFPU lane arithmetic and the LLK's SFPU functions (see sfpu.h, kernels/emu/API.md "SFPU").
#include "sfpu.h"

#include <cstring>
#include <initializer_list>

namespace tgemu::sfpu {
namespace {

constexpr uint32_t SIGN = 0x80000000u, INF = 0x7F800000u, ONE = 0x3F800000u, QNAN = 0x7FC00000u;

uint32_t bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
float value(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
uint32_t neg(uint32_t x) { return x ^ SIGN; }
uint32_t mul(uint32_t a, uint32_t b) { return mad(a, b, 0); }  // SFPMUL: SFPMAD with the constant 0
// SFPSETEXP / SFPSETMAN / SFPDIVP2 (add to the exponent, inf/NaN untouched): bit-field edits.
uint32_t with_exponent(uint32_t x, uint32_t e) { return (x & 0x807FFFFFu) | ((e & 0xFF) << 23); }
uint32_t exponent(uint32_t x) { return (x >> 23) & 0xFF; }
uint32_t add_exponent(uint32_t x, int d) { return exponent(x) == 255 ? x : with_exponent(x, exponent(x) + d); }
// SFPSWAP's min/max order: sign-magnitude, so -0 and +0 compare equal here (both give the same result below).
int64_t order(uint32_t x) { return (x & SIGN) ? -int64_t(x & ~SIGN) : int64_t(x); }
uint32_t max_of(uint32_t a, uint32_t b) { return order(a) >= order(b) ? a : b; }
uint32_t min_of(uint32_t a, uint32_t b) { return order(a) <= order(b) ? a : b; }
// SFP_STOCH_RND fp32 -> [u]int16 (nearest, ties away), sign-magnitude when `keep_sign`, saturating.
uint32_t to_int16(uint32_t x, bool keep_sign) {
    const uint32_t max_mag = keep_sign ? 32767 : 65535, sign = keep_sign ? (x & SIGN) : 0;
    const int e = int(exponent(x)) - 127;
    if (e < -1) return 0;
    if (e >= 16) return sign | max_mag;
    uint64_t m = 0x800000u | (x & 0x7FFFFFu);
    m = e >= 0 ? m << e : m >> -e;
    uint32_t mag = uint32_t((m >> 23) + ((m & 0x7FFFFF) >= 0x400000));
    if (mag > max_mag) mag = max_mag;
    return mag ? sign | mag : 0;
}
// Unpacked operand of SFPMAD: denormals flushed (mantissa 0), hidden bit explicit otherwise.
struct Operand {
    uint32_t sign;
    int32_t e;
    uint32_t m;
    explicit Operand(uint32_t v) : sign(v & SIGN), e(int32_t(exponent(v))), m(e ? (v & 0x7FFFFFu) | 0x800000u : 0) {}
    bool nan() const { return e == 255 && m != 0x800000u; }
    bool inf() const { return e == 255 && m == 0x800000u; }
};
// Right shift that ORs a lost bit into bit 0 only when something survives (Wormhole's alignment).
uint32_t shift_right_partial_sticky(uint32_t v, int s) {
    if (s >= 32) return 0;
    uint32_t r = v >> s;
    if (r && (r << s) != v) r |= 1;
    return r;
}

}  // namespace

uint32_t mad(uint32_t a, uint32_t b, uint32_t c) {
    const Operand x(a), y(b), z(c);
    const uint32_t p_sign = (a ^ b) & SIGN;
    // The product, 48 bits, cut to 24 bits + guard/round/sticky at the addend's scale (z_m << 3).
    const uint64_t full = (uint64_t(x.m) * y.m) << 3;
    uint32_t pm = uint32_t(full >> 23) | uint32_t((full & 0x7FFFFF) != 0);
    int32_t pe = x.e + y.e - 127;
    uint32_t zm = z.m << 3;
    // inf/NaN: a NaN result is not final, the sum's bits below still leak into its mantissa.
    uint32_t nan = 0;
    const bool p_special = x.e == 255 || y.e == 255 || pe >= 255;
    if (p_special || z.e == 255) {
        if ((x.e == 255 && (x.nan() || y.m == 0)) || (y.e == 255 && (y.nan() || x.m == 0)) ||
            (z.inf() && p_special && z.sign != p_sign))
            nan = p_sign | 0x7F800001u;
        else if (z.nan())
            nan = z.sign | 0x7F800001u;
        else if (z.inf())
            return c;
        else
            return p_sign | INF;
        if (pe > 255) pe = 255;
    }
    if (pm == 0 || pe < 0) {  // zero product, or one that underflows on its own
        if (!nan) return z.m ? c : 0;
        pm = 0, pe = 0;
    }
    int32_t re = pe > z.e ? pe : z.e;
    if (pe < re) pm = shift_right_partial_sticky(pm, re - pe);
    if (z.e < re) zm = shift_right_partial_sticky(zm, re - z.e);
    const uint32_t r_sign = pm >= zm ? p_sign : z.sign;
    uint32_t rm = p_sign == z.sign ? pm + zm : (pm >= zm ? pm - zm : zm - pm);
    if (rm == 0) return nan;
    const int n = 5 - __builtin_clz(rm);  // leading one to bit 26
    re += n;
    if (re >= 255) return nan ? nan : (r_sign | INF);
    if (re < 0) return nan;
    rm = n <= 0 ? rm << -n : (rm >> n) | (rm & 1);
    uint32_t r = (uint32_t(re) << 23) + ((rm >> 3) & 0x7FFFFF);
    r += ((rm & 7) + (r & 1)) > 4;
    if (!(r >> 23)) return nan;  // denormal results flush to zero
    return (nan ? nan : r_sign) | r;
}

uint32_t round_bf16(uint32_t x) {
    const uint32_t e = exponent(x);
    if (e == 0) return 0;
    if (e == 255) return x & 0xFF800000u;
    const uint32_t low = x & 0xFFFF;
    return (x - low) + (low >= 0x8000 ? 0x10000 : 0);
}

uint32_t store(uint32_t x, bool fp32_dest) {
    if ((x & ~SIGN) < 0x800000u) x &= SIGN;
    return fp32_dest ? x : x & 0xFFFF0000u;
}

// ---------------------------------------------------------------- exp
namespace {
// APPROX: Schraudolph's exp, exp_init<true, scale, ClampToNegative>. (A*y + (B-C)) rounded to uint16 and
// shifted into the exponent field: 2^(y/ln2) with a piecewise-linear mantissa.
uint32_t exp_approx(uint32_t x, uint32_t scale) {
    const float s = value(scale);
    const uint32_t a = bits(256.0f * 1.4426950408889634f * s), b_minus_c = bits(32500.818359375f);
    const uint32_t threshold = bits(-88.5f / s);
    x = max_of(x, threshold);
    return to_int16(mad(a, x, b_minus_c), false) << 15;
}
// Accurate, bf16 DST: _sfpu_exp_21f_bf16_tti_ (Moroz et al. exp_21f): z = x/ln2 + 127 clamped to [0, 255],
// its fixed-point bits split into 2^int (exponent field) and a fraction refined by a degree-2 polynomial.
// exp_tile's TTI path loads c0 as the fp16a immediate 0x3c02 = 1.001953125 and rounds to bf16; sigmoid's sfpi
// path (_sfpu_exp_21f_bf16_<true>) loads c0 = 1.0017248f in full and keeps the fp32 result.
constexpr uint32_t EXP_21F_C0_TTI = 0x3F804000u, EXP_21F_C0_SFPI = 0x3F803885u;
uint32_t exp_21f(uint32_t x, uint32_t C0 = EXP_21F_C0_TTI, bool to_bf16 = true) {
    const uint32_t ONE_LN2 = 0x3FB8AA3Bu, C2 = bits(4.791750143340323e-15f), C1 = 0x33A85ADAu;
    uint32_t xl = mad(x, ONE_LN2, 0x42FE0000u);  // + 127.0 (bf16 immediate)
    xl = min_of(max_of(xl, 0), 0x437F0000u);      // ClampToNegative, then the upper clamp to 255.0
    const int e = int(exponent(xl)) - 127;       // SFPEXEXP
    const uint32_t m = (xl & 0x7FFFFF) | 0x800000u;  // SFPEXMAN (hidden one)
    const uint32_t amount = uint32_t(e >= 0 ? e : -e) & 31;  // SFPSHFT by a register: low 5 bits
    const uint32_t z = e >= 0 ? m << amount : m >> amount;
    const uint32_t frac = bits(float(z & 0x7FFFFF));  // SFPEXMAN PAD9 + SFPCAST (exact below 2^23)
    const uint32_t poly = mad(mad(frac, C2, C1), frac, C0);
    const uint32_t y = with_exponent(poly, exponent(z));
    return to_bf16 ? round_bf16(y) : y;
}
// Accurate, fp32 DST: _sfpu_exp_fp32_accurate_ (N. Juffa): k = round(x/ln2), two-part Cody-Waite reduction,
// degree-6 polynomial on [-ln2/2, ln2/2], then 2^k by exponent arithmetic with explicit under/overflow.
uint32_t exp_fp32(uint32_t a) {
    uint32_t j = mul(bits(1.442695f), a);
    const uint32_t sm = to_int16(j, true);  // sign-magnitude int16
    const int32_t k = (sm & SIGN) ? -int32_t(sm & 0xFFFF) : int32_t(sm);
    j = bits(float(k));
    uint32_t f = mad(j, bits(-6.93145752e-1f), a);
    f = mad(j, bits(-1.42860677e-6f), f);
    uint32_t r = bits(1.37805939e-3f);
    r = mad(r, f, bits(8.37312452e-3f));
    r = mad(r, f, bits(4.16695364e-2f));
    r = mad(r, f, bits(1.66664720e-1f));
    r = mad(r, f, bits(4.99999851e-1f));
    uint32_t y = mad(r, f, ONE);
    r = mad(y, f, ONE);
    y = mul(y - 1, 0);  // underflow result: +0, or NaN for a NaN input (inf*0)
    const int32_t e = int32_t(exponent(r)) + k;
    if (e >= 1) {
        y = mad(ONE, y, INF);
        if (e < 255) y = with_exponent(r, uint32_t(e));
    }
    return y;
}
}  // namespace

uint32_t exp(uint32_t x, uint16_t scale_bf16, bool approx, bool fp32_dest) {
    const uint32_t scale = uint32_t(scale_bf16) << 16;
    if (approx) return store(exp_approx(x, scale), fp32_dest);
    if (scale != ONE) x = mad(scale, x, 0);  // SFPMULI by the bf16 immediate (scale_en)
    return store(fp32_dest ? exp_fp32(x) : exp_21f(x), fp32_dest);
}

// ---------------------------------------------------------------- reciprocal
// sfpu_reciprocal_iter: x scaled to [1, 2) (negated), quadratic minimax seed, Newton steps y += y(1 - xy),
// then the power-of-two scale 2^(254 - exp) and the input's sign. fp32 DST: 2 steps; bf16 DST: 1 step with
// the bf16-rounding seed and a round to bf16 before scaling; APPROX: 1 step (max_iter=0 behaves as 1).
namespace {
uint32_t reciprocal_iter(uint32_t in, int steps, bool bf16_round) {
    const uint32_t k0 = bits(bf16_round ? 0.32133400440216064453125f : 0.3232325017452239990234375f);
    const uint32_t k1 = bits(bf16_round ? 1.4514148235321044921875f : 1.4545459747314453125f);
    const uint32_t k2 = bits(bf16_round ? 2.1200883388519287109375f : 2.121212482452392578125f);
    const uint32_t nx = 0xBF800000u | (in & 0x7FFFFF);  // copyman(-1.0, in)
    uint32_t y = mad(k0, nx, k1);
    y = mad(y, nx, k2);
    const uint32_t scale = mul(~in & 0xFF800000u, bits(0.5f));
    uint32_t t = mad(nx, y, ONE);
    y = mad(y, t, y);
    if (steps > 1) {
        t = mad(nx, y, ONE);
        y = mad(y, t, y);
    }
    if (bf16_round) y = round_bf16(y);
    y = mul(y, scale);
    return (y & ~SIGN) | (in & SIGN);
}
}  // namespace

uint32_t recip(uint32_t in, bool approx, bool fp32_dest) {
    return store(reciprocal_iter(in, fp32_dest && !approx ? 2 : 1, !approx && !fp32_dest), fp32_dest);
}

// ---------------------------------------------------------------- sigmoid / silu
// _sfpu_sigmoid_ (accurate; sigmoid's fast_and_approx LUT path is not modelled): 1 / (1 + exp(-x)) with the fp32
// Juffa exp and two Newton steps (fp32 DST), or the unrounded sfpi exp_21f and one step (bf16 DST); silu
// multiplies by x. Both round once to bf16 on a bf16 DST.
namespace {
uint32_t sigmoid_lane(uint32_t x, bool fp32_dest) {
    const uint32_t e = fp32_dest ? exp_fp32(neg(x)) : exp_21f(neg(x), EXP_21F_C0_SFPI, false);
    return reciprocal_iter(mad(ONE, e, ONE), fp32_dest ? 2 : 1, false);
}
}  // namespace
uint32_t sigmoid(uint32_t x, bool fp32_dest) {
    const uint32_t r = sigmoid_lane(x, fp32_dest);
    return store(fp32_dest ? r : round_bf16(r), fp32_dest);
}
uint32_t silu(uint32_t x, bool fp32_dest) {
    const uint32_t r = mul(x, sigmoid_lane(x, fp32_dest));
    return store(fp32_dest ? r : round_bf16(r), fp32_dest);
}

// ---------------------------------------------------------------- log
// calculate_log_body (N. Juffa; FAST_APPROX off, no base scaling): x = 2^k * m with m in [0.75, 1.5) by integer
// arithmetic, log(m) = (m-1) + (m-1)^2 * r(m-1) (fp32 DST: degree-8 r; bf16 DST: degree-1 r), plus k ln2;
// log(0) = -inf and log(inf) = inf through the wrapped exponent of x/2, negatives NaN. APPROX has no path.
uint32_t log(uint32_t x, bool fp32_dest) {
    const uint32_t a = mad(x, ONE, 0);  // a * 1 + 0: flushes denormals (and -0 to +0)
    const uint32_t e = (a - 0x3F400000u) & 0xFF800000u;  // (a - 0.75) as integers, mantissa cleared: k * 2^23
    const uint32_t m = mad(ONE, a - e, bits(-1.0f));
    uint32_t result = QNAN;
    if (!(a & SIGN)) {
        const uint32_t s = mul(m, m);
        const int32_t e_int = int32_t(e);
        const uint32_t e_abs = uint32_t(e_int < 0 ? -e_int : e_int);
        uint32_t r;
        if (fp32_dest) {
            r = bits(-0x1.92cp-5f);
            for (float c : {0x1.b84p-4f, -0x1.0c4p-3f, 0x1.274p-3f, -0x1.55p-3f, 0x1.998p-3f, -0x1.00001ap-2f,
                            0x1.555572p-2f, -0.5f})
                r = mad(r, m, bits(c));
        } else {
            r = mad(bits(-0.25f), m, bits(0x1.744p-2f));
            r = mad(r, m, bits(-0x1.008p-1f));
        }
        const uint32_t half_a = add_exponent(a, -1);  // SFPDIVP2 by -1: the exponent wraps, 0 -> 255
        r = mad(r, s, m);
        const uint32_t e_float = bits(float(e_abs)) | (e & SIGN);
        result = mad(e_float, bits(0.693147182f * 1.19209290e-7f), r);
        if (exponent(half_a) == 255) result = mul(result, half_a);
    }
    return store(fp32_dest ? result : round_bf16(result), fp32_dest);
}

// ---------------------------------------------------------------- sqrt / rsqrt
namespace {
// _calculate_sqrt_body_: bit-trick seed y = K - (x >> 1) for 1/sqrt(x); accurate: one cubic correction
// y *= P1 + c(P2 + c) with c = -x y^2, then one Newton-like step for rsqrt (y += y/2 (1 - x y^2)) or for sqrt
// (xy += xy/2 (1 - x y^2)); APPROX: one step y *= P1 - x y^2 (sqrt: xy times it). RsqrtMode/sqrt FAST_APPROX
// off: 0 -> 0, negatives -> NaN.
uint32_t sqrt_body(uint32_t x, bool approx, bool reciprocal) {
    uint32_t y = (approx ? 0x5F0B3892u : 0x5F1110A0u) - (x >> 1);
    const uint32_t inf_minus_x = INF - x;
    const bool regular = inf_minus_x != 0 && (x << 1) != 0;
    const bool negative = int32_t(x) < 0;
    if (approx) {
        const uint32_t c = mul(x, y);
        const uint32_t t = mad(neg(y), c, bits(1.89099014875f));
        if (reciprocal) return regular ? (negative ? QNAN : mul(y, t)) : inf_minus_x;
        y = x != INF ? mul(c, t) : c;
    } else {
        uint32_t xy = mul(x, y);
        const uint32_t c = mul(neg(y), xy);
        y = mul(y, mad(c, mad(ONE, c, bits(2.2533049f)), bits(2.2825186f)));
        xy = mul(x, y);
        const uint32_t one_minus_xyy = mad(neg(y), xy, ONE);
        if (reciprocal) return regular ? (negative ? QNAN : mad(one_minus_xyy, add_exponent(y, -1), y)) : inf_minus_x;
        const uint32_t half_xy = mul(bits(0.5f), xy);
        if (int32_t(x) < int32_t(INF)) y = mad(one_minus_xyy, half_xy, xy);
    }
    if ((x << 1) == 0) return x;
    return negative ? QNAN : y;
}
uint32_t sqrt_store(uint32_t y, bool fp32_dest) { return store(fp32_dest ? y : round_bf16(y), fp32_dest); }
}  // namespace

uint32_t sqrt(uint32_t x, bool approx, bool fp32_dest) { return sqrt_store(sqrt_body(x, approx, false), fp32_dest); }
uint32_t rsqrt(uint32_t x, bool approx, bool fp32_dest) { return sqrt_store(sqrt_body(x, approx, true), fp32_dest); }

// Batched entry for the tests (one ctypes call per array): op 0 SFPMAD(a, b, c), 1 exp (b = bf16 scale),
// 2 recip, 3 sqrt, 4 rsqrt, 5 SFP_STOCH_RND fp32 -> bf16, 6 sigmoid, 7 silu, 8 log; flags bit 0 = APPROX, bit 1 = fp32 DST.
extern "C" void tgemu_sfpu_batch(int op, uint64_t n, const uint32_t* a, const uint32_t* b, const uint32_t* c,
                                 int flags, uint32_t* out) {
    const bool approx = flags & 1, fp32 = flags & 2;
    for (uint64_t i = 0; i < n; i++) {
        switch (op) {
            case 0: out[i] = mad(a[i], b[i], c[i]); break;
            case 1: out[i] = exp(a[i], uint16_t(b[i]), approx, fp32); break;
            case 2: out[i] = recip(a[i], approx, fp32); break;
            case 3: out[i] = sqrt(a[i], approx, fp32); break;
            case 4: out[i] = rsqrt(a[i], approx, fp32); break;
            case 6: out[i] = sigmoid(a[i], fp32); break;
            case 7: out[i] = silu(a[i], fp32); break;
            case 8: out[i] = log(a[i], fp32); break;
            default: out[i] = round_bf16(a[i]); break;
        }
    }
}

}  // namespace tgemu::sfpu
