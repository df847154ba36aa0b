// Fused SwiGLU writer: this core's output tiles, in order, one at a time.
#include <stdint.h>
#include "api/dataflow/dataflow_api.h"
#include "swiglu_common.h"

void kernel_main() {
    constexpr auto out_args = TensorAccessorArgs<0>();
    const uint32_t out_addr = get_arg_val<uint32_t>(0);
    const uint32_t tile_start = get_arg_val<uint32_t>(1);
    const uint32_t tile_count = get_arg_val<uint32_t>(2);
    const auto out_acc = TensorAccessor(out_args, out_addr, get_tile_size(cb_out));

    for (uint32_t t = tile_start; t < tile_start + tile_count; ++t) {
        cb_wait_front(cb_out, 1);
        noc_async_write_page(t, out_acc, get_read_ptr(cb_out));
        noc_async_write_barrier();
        cb_pop_front(cb_out, 1);
    }
}
