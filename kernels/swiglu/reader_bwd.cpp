// SwiGLU gate backward reader: this core owns a contiguous range of [M/32, N/32] tiles of a = x W1 / b = x W3.
// For each tile it streams K in blocks of k_blk tiles (x[m, k..], W1[k.., n], W3[k.., n]), as the forward reader
// does with one-tile subblocks, then the tile dh[m, n].
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
    const uint32_t kt = get_arg_val<uint32_t>(4);  // K in tiles (a multiple of k_blk)
    const uint32_t nt = get_arg_val<uint32_t>(5);  // N in tiles
    const uint32_t tile_start = get_arg_val<uint32_t>(6);
    const uint32_t tile_count = get_arg_val<uint32_t>(7);
    const uint32_t k_blk = get_arg_val<uint32_t>(8);  // K block, tiles (the CBs hold 2 blocks)

    const auto x_acc = TensorAccessor(x_args, x_addr, get_tile_size(cb_x));
    const auto w1_acc = TensorAccessor(w1_args, w1_addr, get_tile_size(cb_w1));
    const auto w3_acc = TensorAccessor(w3_args, w3_addr, get_tile_size(cb_w3));
    const auto dh_acc = TensorAccessor(dh_args, dh_addr, get_tile_size(cb_dh));

    for (uint32_t t = tile_start; t < tile_start + tile_count; ++t) {
        const uint32_t m = t / nt;
        const uint32_t n = t % nt;
        for (uint32_t k0 = 0; k0 < kt; k0 += k_blk) {
            cb_reserve_back(cb_x, k_blk);
            cb_reserve_back(cb_w1, k_blk);
            cb_reserve_back(cb_w3, k_blk);
            const uint32_t lx = get_write_ptr(cb_x);
            const uint32_t l1 = get_write_ptr(cb_w1);
            const uint32_t l3 = get_write_ptr(cb_w3);
            for (uint32_t i = 0; i < k_blk; ++i) {
                noc_async_read_page(m * kt + k0 + i, x_acc, lx + i * get_tile_size(cb_x));
                noc_async_read_page((k0 + i) * nt + n, w1_acc, l1 + i * get_tile_size(cb_w1));
                noc_async_read_page((k0 + i) * nt + n, w3_acc, l3 + i * get_tile_size(cb_w3));
            }
            noc_async_read_barrier();
            cb_push_back(cb_x, k_blk);
            cb_push_back(cb_w1, k_blk);
            cb_push_back(cb_w3, k_blk);
        }
        cb_reserve_back(cb_dh, 1);
        noc_async_read_page(t, dh_acc, get_write_ptr(cb_dh));
        noc_async_read_barrier();
        cb_push_back(cb_dh, 1);
    }
}
