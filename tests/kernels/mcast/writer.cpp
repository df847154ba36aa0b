// Test writer (tests/test_emu_multicast.py): every core writes the tiles its reader received to its own slice of
// the output, so the test sees what landed in each core's L1.
#include <stdint.h>
#include "api/dataflow/dataflow_api.h"

constexpr uint32_t cb_tile = 0;

void kernel_main() {
    constexpr auto out_args = TensorAccessorArgs<0>();
    const uint32_t out_addr = get_arg_val<uint32_t>(0);
    const uint32_t tiles = get_arg_val<uint32_t>(1);
    const uint32_t first_page = get_arg_val<uint32_t>(2);
    const auto out_acc = TensorAccessor(out_args, out_addr, get_tile_size(cb_tile));
    for (uint32_t t = 0; t < tiles; ++t) {
        cb_wait_front(cb_tile, 1);
        noc_async_write_tile(first_page + t, out_acc, get_read_ptr(cb_tile));
        noc_async_write_barrier();
        cb_pop_front(cb_tile, 1);
    }
}
