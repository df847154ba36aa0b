// Test kernel: reads tiles [start, start+n) of tensors a and b into CB 0 and CB 1, one tile at a time.
// Planted bugs: BUG_READ_BEFORE_RESERVE reads tile a into CB 0 before cb_reserve_back;
//               BUG_TWO_PAGES_AT_ONCE reads two interleaved pages with one noc_async_read;
//               BUG_RESERVE_TOO_MANY reserves 3 pages of CB 0 (more than the 2 it holds);
//               BUG_RESERVE_BLOCKS_OF_2 reserves and pushes CB 0 two pages at a time (wraps a 3-page CB);
//               BUG_PUSH_UNRESERVED pushes 2 pages of CB 0 after reserving 1.
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
#ifdef BUG_RESERVE_BLOCKS_OF_2
    for (uint32_t i = start; i + 1 < start + n; i += 2) {
        cb_reserve_back(cb_a, 2);
        cb_reserve_back(cb_b, 2);
        noc_async_read_tile(i, a, get_write_ptr(cb_a));
        noc_async_read_tile(i + 1, a, get_write_ptr(cb_a) + get_tile_size(cb_a));
        noc_async_read_tile(i, b, get_write_ptr(cb_b));
        noc_async_read_tile(i + 1, b, get_write_ptr(cb_b) + get_tile_size(cb_b));
        noc_async_read_barrier();
        cb_push_back(cb_a, 2);
        cb_push_back(cb_b, 2);
    }
    return;
#endif
    for (uint32_t i = start; i < start + n; i++) {
#ifdef BUG_RESERVE_TOO_MANY
        cb_reserve_back(cb_a, 3);
#endif
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
#ifdef BUG_PUSH_UNRESERVED
        cb_push_back(cb_a, 2);
#else
        cb_push_back(cb_a, 1);
#endif
        cb_push_back(cb_b, 1);
    }
}
