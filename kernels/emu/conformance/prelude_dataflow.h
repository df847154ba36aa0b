// Prelude for the API-conformance parse of dataflow kernels against the real tt-metal headers (CMakeLists.txt):
// the values tt-metal's JIT generates per kernel (CB data formats and tile sizes) that the headers expect.
#include <cstdint>

#include "internal/risc_attribs.h"
#include "internal/tt-1xx/risc_common.h"
#define DATA_FORMATS_DEFINED
constexpr unsigned char unpack_src_format[32] = {};
constexpr unsigned char unpack_dst_format[32] = {};
constexpr unsigned char pack_src_format[32] = {};
constexpr unsigned char pack_dst_format[32] = {};
constexpr uint16_t unpack_tile_size[32] = {};
constexpr uint16_t pack_tile_size[32] = {};
constexpr uint8_t unpack_tile_r_dim[32] = {};
constexpr uint8_t unpack_tile_c_dim[32] = {};
constexpr uint8_t unpack_tile_num_faces[32] = {};
