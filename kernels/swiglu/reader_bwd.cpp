// SwiGLU gate backward reader: the forward reader's blocks (swiglu_common.h: per output block and K block, x[block
// rows, K block] and W1 / W3[K block, block columns], read once and reused from L1 by the whole block), then, after
// a block's last K block, its dh tiles one block row at a time (nb pages per row even for a narrower edge block, so
// every CB reservation stays aligned; one barrier per row).
#include <stdint.h>
#include "api/dataflow/dataflow_api.h"
#include "swiglu_bwd_common.h"

void kernel_main() {
    constexpr auto x_args = TensorAccessorArgs<0>();
    constexpr auto w1_args = TensorAccessorArgs<x_args.next_compile_time_args_offset()>();
    constexpr auto w3_args = TensorAccessorArgs<w1_args.next_compile_time_args_offset()>();
    constexpr auto dh_args = TensorAccessorArgs<w3_args.next_compile_time_args_offset()>();

    const uint32_t x_addr = get_arg_val<uint32_t>(0);
    const uint32_t w1_addr = get_arg_val<uint32_t>(1);
    const uint32_t w3_addr = get_arg_val<uint32_t>(2);
    const uint32_t dh_addr = get_arg_val<uint32_t>(3);
    const uint32_t kt = get_arg_val<uint32_t>(4);  // K in tiles (a multiple of kb)
    const uint32_t mt = get_arg_val<uint32_t>(5);
    const uint32_t nt = get_arg_val<uint32_t>(6);
    const uint32_t block_start = get_arg_val<uint32_t>(7);
    const uint32_t block_count = get_arg_val<uint32_t>(8);
    const uint32_t kb = get_arg_val<uint32_t>(9);
    const uint32_t mb = get_arg_val<uint32_t>(10);
    const uint32_t nb = get_arg_val<uint32_t>(11);
    const uint32_t blocks_n = get_arg_val<uint32_t>(12);

    const auto x_acc = TensorAccessor(x_args, x_addr, get_tile_size(cb_x));
    const auto w1_acc = TensorAccessor(w1_args, w1_addr, get_tile_size(cb_w1));
    const auto w3_acc = TensorAccessor(w3_args, w3_addr, get_tile_size(cb_w3));
    const auto dh_acc = TensorAccessor(dh_args, dh_addr, get_tile_size(cb_dh));
    const uint32_t x_tile = get_tile_size(cb_x);
    const uint32_t w_tile = get_tile_size(cb_w1);
    const uint32_t dh_tile = get_tile_size(cb_dh);

    for (uint32_t b = block_start; b < block_start + block_count; ++b) {
        const SwigluBlock blk = swiglu_block(b / blocks_n, b % blocks_n, mt, nt, mb, nb);
        for (uint32_t k0 = 0; k0 < kt; k0 += kb) {
            cb_reserve_back(cb_x, mb * kb);
            cb_reserve_back(cb_w1, kb * nb);
            cb_reserve_back(cb_w3, kb * nb);
            const uint32_t lx = get_write_ptr(cb_x);
            const uint32_t l1 = get_write_ptr(cb_w1);
            const uint32_t l3 = get_write_ptr(cb_w3);
            for (uint32_t r = 0; r < blk.rows; ++r) {
                for (uint32_t i = 0; i < kb; ++i) {
                    noc_async_read_page((blk.row0 + r) * kt + k0 + i, x_acc, lx + (r * kb + i) * x_tile);
                }
            }
            for (uint32_t i = 0; i < kb; ++i) {
                for (uint32_t j = 0; j < blk.cols; ++j) {
                    const uint32_t page = (k0 + i) * nt + blk.col0 + j;
                    noc_async_read_page(page, w1_acc, l1 + (i * nb + j) * w_tile);
                    noc_async_read_page(page, w3_acc, l3 + (i * nb + j) * w_tile);
                }
            }
            noc_async_read_barrier();
            cb_push_back(cb_x, mb * kb);
            cb_push_back(cb_w1, kb * nb);
            cb_push_back(cb_w3, kb * nb);
        }
        for (uint32_t r = 0; r < blk.rows; ++r) {
            cb_reserve_back(cb_dh, nb);
            const uint32_t ld = get_write_ptr(cb_dh);
            for (uint32_t j = 0; j < blk.cols; ++j) {
                noc_async_read_page((blk.row0 + r) * nt + blk.col0 + j, dh_acc, ld + j * dh_tile);
            }
            noc_async_read_barrier();
            cb_push_back(cb_dh, nb);
        }
    }
}
