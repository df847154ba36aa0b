// Data-format conversions (see formats.h). Bit-exactness against ttnn is tested in tests/test_emu_formats.py.
#include "formats.h"
#include "../emu/runtime.h"

#include <cstring>

namespace tgemu {

namespace {

// Round a 24-bit significand (with the hidden one) right by `shift` bits, to nearest, ties to even.
inline uint32_t shift_rne(uint32_t sig, uint32_t shift) {
    if (shift == 0) return sig;
    if (shift > 25) return 0;  // below half of the smallest step: flushes to zero
    uint64_t s = sig;
    uint64_t kept = s >> shift;
    uint64_t rem = s & ((uint64_t(1) << shift) - 1);
    uint64_t half = uint64_t(1) << (shift - 1);
    if (rem > half || (rem == half && (kept & 1))) kept++;
    return uint32_t(kept);
}

// One 16-element group of bfloat8_b: shared exponent + sign/magnitude bytes.
void pack_bfp8_group(const float* v, uint8_t* exp_out, uint8_t* mant_out) {
    uint32_t shared = 0;
    for (int i = 0; i < 16; i++) {
        uint32_t e = (fbits(v[i]) >> 23) & 0xff;
        if (e > shared) shared = e;
    }
    *exp_out = uint8_t(shared);
    for (int i = 0; i < 16; i++) {
        uint32_t u = fbits(v[i]);
        uint32_t sign = u >> 31, e = (u >> 23) & 0xff, mant = u & 0x7fffff;
        uint32_t m;
        if (e == 0) {
            m = 0;  // zero and denormals flush
        } else if (e == 0xff) {
            // inf keeps a bare leading one, NaN some payload; everything else in the group flushes (shared = 255)
            m = 0x40 | (mant >> 17);
            if (mant != 0 && (m & 0x3f) == 0) m |= 1;
        } else {
            m = shift_rne((1u << 23) | mant, 17 + (shared - e));
            if (m > 127) m = 127;  // an overflowing round saturates
        }
        mant_out[i] = uint8_t(m == 0 ? 0 : (sign << 7) | m);
    }
}

float unpack_bfp8(uint8_t shared, uint8_t byte) {
    uint32_t m = byte & 0x7f, sign = byte >> 7;
    if (m == 0) return sign ? -0.0f : 0.0f;
    int e = shared;
    while (!(m & 0x40)) {  // normalise the explicit leading one to the hidden position
        m <<= 1;
        e--;
    }
    if (e <= 0) return sign ? -0.0f : 0.0f;
    return from_fbits((sign << 31) | (uint32_t(e) << 23) | ((m & 0x3f) << 17));
}
}  // namespace

uint32_t tile_bytes(uint32_t fmt) {
    switch (fmt) {
        case 0: return 4096;
        case 5: return 2048;
        case 6: return 1088;
    }
    return 0;
}

void pack_tile_bytes(uint32_t fmt, const float* rm, uint8_t* out) {
    // Face f, face row r holds row-major elements ((f / 2) * 16 + r, (f % 2) * 16 .. +16).
    for (int f = 0; f < 4; f++)
        for (int r = 0; r < 16; r++) {
            const float* row = rm + ((f >> 1) * 16 + r) * 32 + (f & 1) * 16;
            const int at = f * 256 + r * 16;
            if (fmt == 0u) {
                std::memcpy(out + size_t(at) * 4, row, 64);
            } else if (fmt == 5) {
                uint16_t* o = reinterpret_cast<uint16_t*>(out) + at;
                for (int i = 0; i < 16; i++) o[i] = f32_to_bf16_bits(row[i]);
            } else {
                // 64 exponent bytes (face f, row r at f*16 + r), then 1024 sign/magnitude bytes in face order.
                pack_bfp8_group(row, out + f * 16 + r, out + 64 + at);
            }
        }
}

void unpack_tile_bytes(uint32_t fmt, const uint8_t* in, float* rm) {
    for (int f = 0; f < 4; f++)
        for (int r = 0; r < 16; r++) {
            float* row = rm + ((f >> 1) * 16 + r) * 32 + (f & 1) * 16;
            const int at = f * 256 + r * 16;
            if (fmt == 0u) {
                std::memcpy(row, in + size_t(at) * 4, 64);
            } else if (fmt == 5) {
                const uint16_t* p = reinterpret_cast<const uint16_t*>(in) + at;
                for (int i = 0; i < 16; i++) row[i] = bf16_bits_to_f32(p[i]);
            } else {
                for (int i = 0; i < 16; i++) row[i] = unpack_bfp8(in[f * 16 + r], in[64 + at + i]);
            }
        }
}

}  // namespace tgemu

// C entry points for Python (ctypes): whole arrays of tiles.
extern "C" {
int tgemu_pack_tiles(uint32_t fmt, const float* rowmajor_tiles, uint64_t ntiles, uint8_t* out) {
    uint32_t tb = tgemu::tile_bytes(fmt);
    if (!tb) return -1;
    for (uint64_t t = 0; t < ntiles; t++) tgemu::pack_tile_bytes(fmt, rowmajor_tiles + t * 1024, out + t * tb);
    return 0;
}
int tgemu_unpack_tiles(uint32_t fmt, const uint8_t* in, uint64_t ntiles, float* rowmajor_tiles) {
    uint32_t tb = tgemu::tile_bytes(fmt);
    if (!tb) return -1;
    for (uint64_t t = 0; t < ntiles; t++) tgemu::unpack_tile_bytes(fmt, in + t * tb, rowmajor_tiles + t * 1024);
    return 0;
}
}
