// Wormhole B0 datapath numerics: what the unpacker puts in the FPU's source registers, what ELWADD / ELWSUB /
// ELWMUL / MVMUL / GAPOOL / GMPOOL write into DST, and how the packer rounds DST into a CB's format.
// Pure functions on bit patterns; the tile ops in runtime.cpp call them. kernels/emu/API.md ("Numerics") gives the
// source of each behaviour; tests/test_emu_ttsim_oracle.py checks them bit for bit against ttsim's own routines.
//
// Representations (those of the hardware):
//  - a source-register datum (SrcA / SrcB) is 19 bits: sign (bit 18), 8-bit exponent (bits 17..10), 10-bit mantissa:
//    the top 19 bits of an fp32 pattern (`bits >> 13`). bf16 and bfp8_b data leave the low 3 mantissa bits zero.
//  - a DST datum is an fp32 bit pattern; without fp32_dest_acc_en the hardware keeps only its top 16 bits (bf16).
#pragma once
#include <cstdint>

namespace tgemu::datapath {

// ---------------------------------------------------------------- unpacker (L1 -> SrcA / SrcB)
// float32 L1 data: TF32 (13 mantissa bits truncated) when the JIT's unpack destination format is Tf32
// (fp32_dest_acc_en), otherwise Float16_b (16 bits truncated, denormals to signed zero first).
inline uint32_t unpack_fp32_to_src(uint32_t bits, bool tf32) {
    if (tf32) return (bits & 0xFFFFE000u) >> 13;
    if ((bits & 0x7FFFFFFFu) < 0x800000u) bits &= 0x80000000u;
    return (bits & 0xFFFF0000u) >> 13;
}
inline uint32_t unpack_bf16_to_src(uint16_t h) { return uint32_t(h) << 3; }
// bfloat8_b (sign + 7-bit magnitude with an explicit leading one, shared exponent) -> the bf16 the unpacker makes.
uint16_t unpack_bfp8_to_bf16(uint8_t byte, uint8_t shared_exp);
inline uint32_t src_to_fp32_bits(uint32_t src) { return src << 13; }
// The FPU treats a datum with a zero exponent as zero (denormals flush).
inline bool src_is_zero(uint32_t src) { return (src & 0x3FFFFu) < 0x400u; }

// ---------------------------------------------------------------- FPU (SrcA, SrcB, DST -> DST)
// Fidelity phases the LLK issues per op: LoFi = phase 0 only; HiFi2/3/4 = phases 0..1 / 0..2 / 0..3.
inline uint32_t fidelity_phases(uint32_t math_fidelity) { return math_fidelity == 0 ? 1 : math_fidelity; }
// How often this thread's accumulations took Wormhole B0's renormalisation erratum (a sum of exactly one unit on the
// negative side, renormalised wrongly, so the element lands a power of two off). The public report of it on cards is
// tenstorrent/tt-metal #38306 (HiFi4 with fp32 accumulation; ttnn defaults to HiFi3 on Wormhole since #40089).
uint64_t accumulate_erratum_hits();

// ELWADD (a + b) / ELWSUB (flip b's sign first); `accumulate` adds the result into dst (acc_to_dest).
uint32_t elwadd(uint32_t a, uint32_t b, uint32_t dst, bool fp32_dst, bool accumulate);
inline uint32_t elwsub(uint32_t a, uint32_t b, uint32_t dst, bool fp32_dst, bool accumulate) {
    return elwadd(a, b ^ (1u << 18), dst, fp32_dst, accumulate);
}
// ELWMUL in one fidelity phase (0..3): dst + a_slice * b_slice. ELWMUL always accumulates into DST.
uint32_t elwmul(uint32_t a, uint32_t b, uint32_t dst, bool fp32_dst, uint32_t phase);
// One output datum of MVMUL / GAPOOL in one fidelity phase: dst + sum_i a[i] * b[i] over 16 lanes
// (a = SrcA column, b = SrcB row), products aligned to the larger exponent of each group of 8 lanes.
uint32_t mvmul16(const uint32_t* a, const uint32_t* b, uint32_t dst, bool fp32_dst, uint32_t phase);
// GMPOOL: running max in sign-magnitude order, the source datum at its register precision.
uint32_t gmpool_max(uint32_t running_fp32_bits, uint32_t src);

// Vectorised form of mvmul16 for the tile ops: operands pre-split per lane.
struct Operand {
    uint32_t sign;   // 0 / 1
    int32_t exp;     // 8-bit biased exponent; a zero datum has exp 0 and zero mantissa
    uint32_t hi, lo; // mantissa slices used in the even / odd phases (SrcA: 5 bits; SrcB: 7 bits)
    bool zero;
};
Operand split_srca(uint32_t src);
Operand split_srcb(uint32_t src);
uint32_t mvmul16_split(const Operand* a, const Operand* b, uint32_t dst, bool fp32_dst, uint32_t phase);

// Matmul's inner loop, laid out for SIMD over the 32 output columns: the 16 k-lanes of SrcA (in1's rows
// 16 * kf .. +16) for every column, and one MVMUL per column against one SrcB row (16 lanes of in0).
struct SrcAFace {
    int32_t exp[16][32], sign[16][32], zero[16][32];
    int32_t man[2][16][32];  // [0]: the even-phase (high) slice, [1]: the odd-phase (low) slice
};
void split_srca_face(const uint32_t* in1_rowmajor, bool transpose, int kf, SrcAFace& out);
// dst[c] = mvmul16(column c of `a`, `b16`, dst[c]) for c in 0..31, in fidelity phase `phase`.
void mvmul_row(const SrcAFace& a, const Operand* b16, uint32_t* dst32, bool fp32_dst, uint32_t phase);
// matmul_tiles on one tile pair: DST += in0 x in1 (in1^T with transpose), in0 in SrcB and in1 in SrcA (source-
// register data, row-major). Fidelity phases outer; in each, the k 0..15 face product then k 16..31, one MVMUL
// each into DST (the LLK's MVMUL order for a 32x32 tile).
void matmul_tile(const uint32_t* in0, const uint32_t* in1, bool transpose_in1, uint32_t* dst_rowmajor, bool fp32_dst,
                 uint32_t math_fidelity);

// ---------------------------------------------------------------- DST storage
// What DST holds of an fp32 value written by the SFPU (SFPSTORE flushes denormals to signed zero) or the unpacker.
inline uint32_t flush_denormal(uint32_t bits) {
    return (bits & 0x7FFFFFFFu) < 0x800000u ? bits & 0x80000000u : bits;
}

// ---------------------------------------------------------------- packer (DST -> L1)
// fp32 DST -> bf16: NaN -> inf of its sign, round half away from zero, results below the smallest normal -> +0.
uint16_t pack_bf16(uint32_t dst_bits, bool fp32_dst);
// 16 DST data (one face row) -> bfloat8_b: bf16 with a 6-bit rounded mantissa, then the block's shared exponent.
void pack_bfp8_group(const uint32_t* dst_bits, bool fp32_dst, uint8_t* shared_exp, uint8_t* mantissas);

// ---------------------------------------------------------------- whole tiles (face-ordered L1 <-> row-major)
// One tile of a CB (format code as tt-metal's DataFormat: 0 float32, 5 bfloat16, 6 bfloat8_b) into 1024 source-
// register data, row-major; `tf32` selects the Tf32 unpack destination for float32 data.
void unpack_tile_to_src(uint32_t fmt, const uint8_t* l1, bool tf32, uint32_t* src_rowmajor);
// One row-major tile of DST data (fp32 bit patterns) through the packer into a CB's format.
void pack_tile_from_dst(uint32_t fmt, const uint32_t* dst_rowmajor, bool fp32_dst, uint8_t* l1);

}  // namespace tgemu::datapath
