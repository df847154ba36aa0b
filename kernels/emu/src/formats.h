// Data-format conversions of the emulator, modelled on ttnn's host conversion (TT_FACTS.md):
// float32 -> bfloat16 round-to-nearest-even; bfloat8_b = one shared exponent per 16 elements of a face row
// (the group's max exponent), sign + 7-bit magnitude (explicit leading one) rounded to nearest even,
// saturating, values at or below half an ulp flush to zero, inf/NaN zero the rest of their group.
// Tiles in memory are face-ordered (four 16x16 faces); the float side is a row-major 32x32 tile.
#pragma once
#include <cstdint>

namespace tgemu {

constexpr int TILE_HW = 1024;

uint32_t tile_bytes(uint32_t fmt);
uint16_t f32_to_bf16_bits(float x);
float bf16_bits_to_f32(uint16_t b);
float round_bf16(float x);
float round_tf32(float x);
// One 32x32 tile: row-major floats <-> face-ordered bytes of `fmt`.
void pack_tile_bytes(uint32_t fmt, const float* rowmajor, uint8_t* out);
void unpack_tile_bytes(uint32_t fmt, const uint8_t* in, float* rowmajor);

}  // namespace tgemu
