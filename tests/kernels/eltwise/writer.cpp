// Test kernel: writes tiles [start, start+n) of tensor out from CB 16.
// Planted bugs: BUG_EXTRA_WAIT waits for one tile more than compute produces (deadlock);
//               BUG_POP_TWICE pops two pages per tile; BUG_NO_BARRIER pops before the write barrier;
//               BUG_BAD_POINTER writes through a pointer made from a bogus L1 address (crashes).
#include <stdint.h>

#include "api/dataflow/dataflow_api.h"

void kernel_main() {
    const uint32_t out_addr = get_arg_val<uint32_t>(0);
    const uint32_t start = get_arg_val<uint32_t>(1);
    const uint32_t n = get_arg_val<uint32_t>(2);
    constexpr uint32_t cb_out = 16;
    constexpr auto out_args = TensorAccessorArgs<0>();
    const auto out = TensorAccessor(out_args, out_addr, get_tile_size(cb_out));
    for (uint32_t i = start; i < start + n; i++) {
        cb_wait_front(cb_out, 1);
        noc_async_write_tile(i, out, get_read_ptr(cb_out));
#ifndef BUG_NO_BARRIER
        noc_async_write_barrier();
#endif
#ifdef BUG_POP_TWICE
        cb_pop_front(cb_out, 2);
#else
        cb_pop_front(cb_out, 1);
#endif
#ifdef BUG_NO_BARRIER
        noc_async_write_barrier();
#endif
    }
#ifdef BUG_EXTRA_WAIT
    cb_wait_front(cb_out, 1);
#endif
#ifdef BUG_BAD_POINTER
    *reinterpret_cast<volatile uint32_t*>(uintptr_t(get_read_ptr(cb_out) & 0xffcu)) = 1;  // lands in page 0
#endif
}
