// SwiGLU gate backward writer: this core's da and db tiles, in order, one pair at a time.
#include <stdint.h>
#include "api/dataflow/dataflow_api.h"
#include "swiglu_bwd_common.h"

void kernel_main() {
    constexpr auto da_args = TensorAccessorArgs<0>();
    constexpr auto db_args = TensorAccessorArgs<da_args.next_compile_time_args_offset()>();
    const uint32_t da_addr = get_arg_val<uint32_t>(0);
    const uint32_t db_addr = get_arg_val<uint32_t>(1);
    const uint32_t tile_start = get_arg_val<uint32_t>(2);
    const uint32_t tile_count = get_arg_val<uint32_t>(3);
    const auto da_acc = TensorAccessor(da_args, da_addr, get_tile_size(cb_da));
    const auto db_acc = TensorAccessor(db_args, db_addr, get_tile_size(cb_db));

    for (uint32_t t = tile_start; t < tile_start + tile_count; ++t) {
        cb_wait_front(cb_da, 1);
        noc_async_write_page(t, da_acc, get_read_ptr(cb_da));
        cb_wait_front(cb_db, 1);
        noc_async_write_page(t, db_acc, get_read_ptr(cb_db));
        noc_async_write_barrier();
        cb_pop_front(cb_da, 1);
        cb_pop_front(cb_db, 1);
    }
}
