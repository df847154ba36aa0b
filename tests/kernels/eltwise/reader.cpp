// Test kernel: reads tiles [start, start+n) of tensors a and b into CB 0 and CB 1, one tile at a time.
// Planted bugs: BUG_READ_BEFORE_RESERVE reads tile a into CB 0 before cb_reserve_back;
//               BUG_TWO_PAGES_AT_ONCE reads two interleaved pages with one noc_async_read.
#include <stdint.h>

#include "api/dataflow/dataflow_api.h"

void kernel_main() {
    const uint32_t a_addr = get_arg_val<uint32_t>(0);
    const uint32_t b_addr = get_arg_val<uint32_t>(1);
    const uint32_t start = get_arg_val<uint32_t>(2);
    const uint32_t n = get_arg_val<uint32_t>(3);
    constexpr uint32_t cb_a = 0, cb_b = 1;
    constexpr auto a_args = TensorAccessorArgs<0>();
    constexpr auto b_args = TensorAccessorArgs<a_args.next_compile_time_args_offset()>();
    const auto a = TensorAccessor(a_args, a_addr, get_tile_size(cb_a));
    const auto b = TensorAccessor(b_args, b_addr, get_tile_size(cb_b));
    for (uint32_t i = start; i < start + n; i++) {
#ifdef BUG_READ_BEFORE_RESERVE
        noc_async_read_tile(i, a, get_write_ptr(cb_a));
#endif
        cb_reserve_back(cb_a, 1);
        cb_reserve_back(cb_b, 1);
#ifdef BUG_TWO_PAGES_AT_ONCE
        noc_async_read(a.get_noc_addr(i), get_write_ptr(cb_a), 2 * get_tile_size(cb_a));
#else
        noc_async_read_tile(i, a, get_write_ptr(cb_a));
#endif
        noc_async_read_tile(i, b, get_write_ptr(cb_b));
        noc_async_read_barrier();
        cb_push_back(cb_a, 1);
        cb_push_back(cb_b, 1);
    }
}
