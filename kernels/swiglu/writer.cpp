// Fused SwiGLU writer: this core's output tiles in the order the compute kernel packs them (per block: row by row,
// subblock by subblock), one page at a time (the last subblock of an edge block can be narrower than w).
#include <stdint.h>
#include "api/dataflow/dataflow_api.h"
#include "swiglu_common.h"

void kernel_main() {
    constexpr auto out_args = TensorAccessorArgs<0>();
    const uint32_t out_addr = get_arg_val<uint32_t>(0);
    const uint32_t mt = get_arg_val<uint32_t>(1);
    const uint32_t nt = get_arg_val<uint32_t>(2);
    const uint32_t block_start = get_arg_val<uint32_t>(3);
    const uint32_t block_count = get_arg_val<uint32_t>(4);
    const uint32_t mb = get_arg_val<uint32_t>(5);
    const uint32_t nb = get_arg_val<uint32_t>(6);
    const uint32_t blocks_n = get_arg_val<uint32_t>(7);
    const auto out_acc = TensorAccessor(out_args, out_addr, get_tile_size(cb_out));

    for (uint32_t b = block_start; b < block_start + block_count; ++b) {
        const SwigluBlock blk = swiglu_block(b, blocks_n, mt, nt, mb, nb);
        for (uint32_t r = 0; r < blk.rows; ++r) {
            for (uint32_t j = 0; j < blk.cols; ++j) {
                cb_wait_front(cb_out, 1);
                noc_async_write_page((blk.row0 + r) * nt + blk.col0 + j, out_acc, get_read_ptr(cb_out));
                noc_async_write_barrier();
                cb_pop_front(cb_out, 1);
            }
        }
    }
}
