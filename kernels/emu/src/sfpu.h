// The Wormhole B0 SFPU (vector unit) as the LLK drives it: one lane's fp32 arithmetic with the SFPU's own
// rounding, and the LLK's algorithms for the SFPU functions our kernels use, in its accurate (APPROX=false)
// and approximate (APPROX=true) paths. Each function returns the bit pattern SFPSTORE writes to DST.
// Sources: the LLK headers in the ttnn wheel (ckernel_sfpu_{exp,recip,sqrt,rsqrt}.h) for the algorithms, and
// ttsim's src/tensix.cpp + src/fma.cpp for how each SFPU instruction rounds (kernels/emu/API.md, "SFPU").
#pragma once
#include <cstdint>

namespace tgemu::sfpu {

// SFPMAD (and SFPMUL/SFPADD/SFPMULI/SFPADDI, which are SFPMAD with 0 or 1.0): a*b + c in one step, but
// with Wormhole's datapath: denormal inputs flushed, the product cut to 27 bits (24 + guard/round/sticky)
// before the add, alignment and normalisation that keep a partial sticky bit, round to nearest even,
// denormal results flushed to +0, NaNs that keep stray mantissa bits.
uint32_t mad(uint32_t a, uint32_t b, uint32_t c);
// SFP_STOCH_RND FP32_TO_FP16B with RND_EVEN as ttsim models it: nearest, ties away from zero; zero/denormal
// -> +0, inf/NaN -> inf of that sign.
uint32_t round_bf16(uint32_t x);
// SFPSTORE of an fp32 LREG to DST: denormals become zero; a bf16 DST keeps the upper 16 bits (truncation).
uint32_t store(uint32_t x, bool fp32_dest);

// The LLK's functions. `x` is the DST value as fp32 bits; results are the DST bit pattern after SFPSTORE.
// exp: scale_bf16 is exp_tile's bf16 scale (0x3F80 = 1.0 when scale_en is off).
uint32_t exp(uint32_t x, uint16_t scale_bf16, bool approx, bool fp32_dest);
uint32_t recip(uint32_t x, bool approx, bool fp32_dest);
uint32_t sqrt(uint32_t x, bool approx, bool fp32_dest);
uint32_t rsqrt(uint32_t x, bool approx, bool fp32_dest);
// The LLK's sigmoid, silu and log have no APPROX path (silu_init and log_init ignore it).
uint32_t sigmoid(uint32_t x, bool fp32_dest);
uint32_t silu(uint32_t x, bool fp32_dest);
uint32_t log(uint32_t x, bool fp32_dest);

}  // namespace tgemu::sfpu
