// A C ABI around ttsim's own datapath routines (the bit-exact oracle for kernels/emu/src/datapath.cpp).
// This file includes ttsim's src/tensix.cpp unmodified, so its static functions can be called directly; it is
// compiled at test time against a copy of ../shared/ttsim (tests/ttsim_oracle/build.py). Nothing of ttsim is
// copied into this project: the wrappers below only forward arguments.
#include "tensix.cpp"

extern "C" {
// SrcA/SrcB datums are 19-bit (sign, 8-bit exponent, 10-bit mantissa): fp32 bits >> 13.
uint32_t oracle_elwadd(uint32_t a, uint32_t b, uint32_t dst, int fp32_acc, int accum) {
    bool za = (a & 0x3FFFF) < 0x400, zb = (b & 0x3FFFF) < 0x400;
    return elwadd(a, b, dst, za, zb, fp32_acc, accum, true);
}
uint32_t oracle_elwmul(uint32_t a, uint32_t b, uint32_t dst, int fp32_acc, uint32_t phase) {
    bool za = (a & 0x3FFFF) < 0x400, zb = (b & 0x3FFFF) < 0x400;
    return elwmul(a, b, dst, za, zb, fp32_acc, phase, true);
}
// One MVMUL output datum: dst + sum_i a[i] * b[i] over 16 lanes in fidelity phase `phase`.
uint32_t oracle_mvmul(const uint32_t* a, const uint32_t* b, uint32_t dst, int fp32_acc, uint32_t phase) {
    return mvmul(a, b, dst, fpu_exp_prod_adj(fp32_acc, phase, true), fp32_acc, phase, true);
}
uint16_t oracle_bfp8_to_bf16(uint8_t x, uint8_t exp) { return bfp8_to_bf16(x, exp); }
}

// Batched form (one ctypes call per array): op 0 ELWADD, 1 ELWSUB (mode = accumulate), 2 ELWMUL, 3 MVMUL
// (mode = fidelity phase; a and b hold 16 lanes per datum), 4 bfp8 -> bf16 unpack (a = byte, b = shared exponent).
extern "C" void oracle_batch(int op, uint64_t n, const uint32_t* a, const uint32_t* b, const uint32_t* dst,
                             int fp32_acc, uint32_t mode, uint32_t* out) {
    for (uint64_t i = 0; i < n; i++) {
        switch (op) {
            case 0: out[i] = oracle_elwadd(a[i], b[i], dst[i], fp32_acc, mode); break;
            case 1: out[i] = oracle_elwadd(a[i], b[i] ^ (1u << 18), dst[i], fp32_acc, mode); break;
            case 2: out[i] = oracle_elwmul(a[i], b[i], dst[i], fp32_acc, mode); break;
            case 3: out[i] = oracle_mvmul(a + 16 * i, b + 16 * i, dst[i], fp32_acc, mode); break;
            default: out[i] = oracle_bfp8_to_bf16(uint8_t(a[i]), uint8_t(b[i])); break;
        }
    }
}

// SFPMAD as ttsim executes it per lane (TENSIX_EXECUTE_SFPMAD forwards each lane to fma_model, Wormhole's
// non-IEEE FMA in src/fma.cpp); SFPMUL / SFPADD / SFPMULI / SFPADDI reach the same routine with 0 or 1.0.
extern "C" void oracle_sfpmad_batch(uint64_t n, const uint32_t* a, const uint32_t* b, const uint32_t* c,
                                    uint32_t* out) {
    for (uint64_t i = 0; i < n; i++) out[i] = fma_model(a[i], b[i], c[i]);
}
