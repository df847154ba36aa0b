// Data-format conversions of the emulator, modelled on ttnn's host conversion (TT_FACTS.md):
// float32 -> bfloat16 round-to-nearest-even; bfloat8_b = one shared exponent per 16 elements of a face row
// (the group's max exponent), sign + 7-bit magnitude (explicit leading one) rounded to nearest even,
// saturating, values at or below half an ulp flush to zero, inf/NaN zero the rest of their group.
// Tiles in memory are face-ordered (four 16x16 faces); the float side is a row-major 32x32 tile.
#pragma once
#include <cstdint>
#include <cstring>

namespace tgemu {

constexpr int TILE_HW = 1024;

uint32_t tile_bytes(uint32_t fmt);

inline uint16_t f32_to_bf16_bits(float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0;  // NaN -> the canonical quiet NaN (as ttnn)
    u += 0x7fff + ((u >> 16) & 1);
    return uint16_t(u >> 16);
}
// A float's bit pattern and back (DST and the datapath work on bit patterns).
inline uint32_t fbits(float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    return u;
}
inline float from_fbits(uint32_t u) {
    float x;
    std::memcpy(&x, &u, 4);
    return x;
}
inline float bf16_bits_to_f32(uint16_t b) {
    uint32_t u = uint32_t(b) << 16;
    float x;
    std::memcpy(&x, &u, 4);
    return x;
}
inline float round_bf16(float x) { return bf16_bits_to_f32(f32_to_bf16_bits(x)); }
// One 32x32 tile: row-major floats <-> face-ordered bytes of `fmt`.
void pack_tile_bytes(uint32_t fmt, const float* rowmajor, uint8_t* out);
void unpack_tile_bytes(uint32_t fmt, const uint8_t* in, float* rowmajor);

}  // namespace tgemu
