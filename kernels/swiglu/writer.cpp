// Fused SwiGLU writer: this core's output tiles in the order the compute kernel packs them (per block: row by row,
// subblock by subblock), one page at a time (the last subblock of an edge block can be narrower than w).
#include <stdint.h>
#include "api/dataflow/dataflow_api.h"
#include "swiglu_common.h"

void kernel_main() {
    constexpr auto out_args = TensorAccessorArgs<0>();
    const SwigluLayout lay = swiglu_layout();
    const uint32_t out_addr = get_arg_val<uint32_t>(8);
    const uint32_t mt = get_arg_val<uint32_t>(9);
    const uint32_t nt = get_arg_val<uint32_t>(10);
    const uint32_t mb = get_arg_val<uint32_t>(11);
    const uint32_t nb = get_arg_val<uint32_t>(12);
    const auto out_acc = TensorAccessor(out_args, out_addr, get_tile_size(cb_out));

    for (uint32_t j = lay.column; j < lay.blocks_n; j += lay.columns) {
        for (uint32_t round = 0; round < lay.rounds(); ++round) {
            if (!lay.round_used(round)) {
                continue;
            }
            const uint32_t i = lay.block_row(round);
            if (i >= lay.blocks_m) {
                continue;
            }
            const SwigluBlock blk = swiglu_block(i, j, mt, nt, mb, nb);
            for (uint32_t r = 0; r < blk.rows; ++r) {
                for (uint32_t c = 0; c < blk.cols; ++c) {
                    cb_wait_front(cb_out, 1);
                    noc_async_write_page((blk.row0 + r) * nt + blk.col0 + c, out_acc, get_read_ptr(cb_out));
                    noc_async_write_barrier();
                    cb_pop_front(cb_out, 1);
                }
            }
        }
    }
}
