// Emulator version of tt-metal's api/compile_time_args.h: compile-time args are a constexpr array filled from
// -DKERNEL_COMPILE_TIME_ARGS=a,b,c (as tt-metal's JIT does), so `constexpr` uses and templates work unchanged.
#pragma once
#include <array>
#include <cstdint>

template <class T, class... Ts>
constexpr std::array<T, sizeof...(Ts)> make_array(Ts... values) {
    return {T(values)...};
}
#ifndef KERNEL_COMPILE_TIME_ARGS
#define KERNEL_COMPILE_TIME_ARGS
#endif
constexpr auto kernel_compile_time_args = make_array<std::uint32_t>(KERNEL_COMPILE_TIME_ARGS);

template <uint32_t Idx>
constexpr uint32_t get_ct_arg() {
    static_assert(Idx < kernel_compile_time_args.size(), "get_compile_time_arg_val: index out of range");
    return kernel_compile_time_args[Idx];
}
#define get_compile_time_arg_val(arg_idx) get_ct_arg<arg_idx>()
