// Pieces shared by compute and dataflow kernels in the emulator: runtime args, compile-time args, DataFormat.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>

#include "cb_index.h"
#include "runtime.h"

#ifndef FORCE_INLINE
#define FORCE_INLINE inline __attribute__((always_inline))
#endif
#ifndef ALWI
#define ALWI inline __attribute__((always_inline))
#endif
#define tt_l1_ptr
#define tt_reg_ptr

enum class DataFormat : uint8_t { Float32 = 0, Float16 = 1, Bfp8 = 2, Float16_b = 5, Bfp8_b = 6, Invalid = 0xff };

template <typename T>
FORCE_INLINE T get_arg_val(int arg_idx) {
    static_assert(sizeof(T) == 4, "get_arg_val<T>: T must be 4 bytes");
    uint32_t v = tgemu::arg(uint32_t(arg_idx));
    T out;
    __builtin_memcpy(&out, &v, 4);
    return out;
}
template <typename T>
FORCE_INLINE T get_common_arg_val(int arg_idx) {
    uint32_t v = tgemu::common_arg(uint32_t(arg_idx));
    T out;
    __builtin_memcpy(&out, &v, 4);
    return out;
}

#include "../api/compile_time_args.h"
