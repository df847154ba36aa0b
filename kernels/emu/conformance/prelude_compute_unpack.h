// Prelude for the UNPACK-thread (TRISC0) conformance parse of compute kernels (CMakeLists.txt): with TRISC_UNPACK
// defined the LLK unpack bodies are parsed and instantiated, so their static_asserts (e.g. reduce rejects
// PoolType::MIN) check the kernel's template arguments. These are the per-CB descriptor tables tt-metal's JIT
// generates for the unpacker (chlkc_unpack_data_format.h, chlkc_unpack_tile_dims.h); values do not matter for a parse.
// The MATH and PACK threads cannot be parsed on the host: their LLK headers need sfpi.h, the SFPU compiler's
// intrinsics header, which is part of tt-metal's RISC-V toolchain.
#include <cstdint>

#define DATA_FORMATS_DEFINED
constexpr std::int32_t unpack_src_format[32] = {};
constexpr std::int32_t unpack_dst_format[32] = {};
constexpr std::uint8_t unpack_tile_num_faces[32] = {};
constexpr std::uint8_t unpack_partial_face[32] = {};
constexpr std::uint8_t unpack_tile_face_r_dim[32] = {};
constexpr std::uint8_t unpack_narrow_tile[32] = {};
constexpr std::uint8_t unpack_tile_r_dim[32] = {};
constexpr std::uint8_t unpack_tile_c_dim[32] = {};
constexpr std::uint16_t unpack_tile_size[32] = {};
constexpr std::uint8_t unpack_num_faces_r_dim[32] = {};
constexpr std::uint8_t unpack_num_faces_c_dim[32] = {};
