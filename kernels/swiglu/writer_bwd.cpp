// SwiGLU gate backward writer: da and db in the order the compute kernel packs them (per block: row by row), one
// tile pair per barrier: subblocks at block edges are narrower, so the CBs are handed over a page at a time (a
// reservation that straddles the end of a CB would wrap on a card).
#include <stdint.h>
#include "api/dataflow/dataflow_api.h"
#include "swiglu_bwd_common.h"

void kernel_main() {
    constexpr auto da_args = TensorAccessorArgs<0>();
    constexpr auto db_args = TensorAccessorArgs<da_args.next_compile_time_args_offset()>();
    const uint32_t da_addr = get_arg_val<uint32_t>(0);
    const uint32_t db_addr = get_arg_val<uint32_t>(1);
    const uint32_t mt = get_arg_val<uint32_t>(2);
    const uint32_t nt = get_arg_val<uint32_t>(3);
    const uint32_t block_start = get_arg_val<uint32_t>(4);
    const uint32_t block_count = get_arg_val<uint32_t>(5);
    const uint32_t mb = get_arg_val<uint32_t>(6);
    const uint32_t nb = get_arg_val<uint32_t>(7);
    const uint32_t blocks_n = get_arg_val<uint32_t>(8);
    const auto da_acc = TensorAccessor(da_args, da_addr, get_tile_size(cb_da));
    const auto db_acc = TensorAccessor(db_args, db_addr, get_tile_size(cb_db));

    for (uint32_t b = block_start; b < block_start + block_count; ++b) {
        const SwigluBlock blk = swiglu_block(b / blocks_n, b % blocks_n, mt, nt, mb, nb);
        for (uint32_t r = 0; r < blk.rows; ++r) {
            for (uint32_t j = 0; j < blk.cols; ++j) {
                const uint32_t page = (blk.row0 + r) * nt + blk.col0 + j;
                cb_wait_front(cb_da, 1);
                cb_wait_front(cb_db, 1);
                noc_async_write_page(page, da_acc, get_read_ptr(cb_da));
                noc_async_write_page(page, db_acc, get_read_ptr(cb_db));
                noc_async_write_barrier();
                cb_pop_front(cb_da, 1);
                cb_pop_front(cb_db, 1);
            }
        }
    }
}
