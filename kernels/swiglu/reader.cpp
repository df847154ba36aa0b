// Fused SwiGLU reader: this core owns a contiguous range of output tiles (row-major over [M/32, N/32]), processed
// in groups of up to n_blk neighbouring tiles of one output row (an output subblock, so x is read once per group).
// For each group it streams K in blocks of k_blk tiles: x[m, k..] (k_blk tiles), then W1[k.., n0..] and
// W3[k.., n0..] as k_blk x n_blk tiles (index i * n_blk + j). A group narrower than n_blk (at a row end) still
// pushes whole k_blk x n_blk blocks, leaving the unused pages unread, so every CB block stays aligned.
#include <stdint.h>
#include "api/dataflow/dataflow_api.h"
#include "swiglu_common.h"

void kernel_main() {
    constexpr auto x_args = TensorAccessorArgs<0>();
    constexpr auto w1_args = TensorAccessorArgs<x_args.next_compile_time_args_offset()>();
    constexpr auto w3_args = TensorAccessorArgs<w1_args.next_compile_time_args_offset()>();

    const uint32_t x_addr = get_arg_val<uint32_t>(0);
    const uint32_t w1_addr = get_arg_val<uint32_t>(1);
    const uint32_t w3_addr = get_arg_val<uint32_t>(2);
    const uint32_t kt = get_arg_val<uint32_t>(3);  // K in tiles (a multiple of k_blk)
    const uint32_t nt = get_arg_val<uint32_t>(4);  // N in tiles
    const uint32_t tile_start = get_arg_val<uint32_t>(5);
    const uint32_t tile_count = get_arg_val<uint32_t>(6);
    const uint32_t k_blk = get_arg_val<uint32_t>(7);  // K block, tiles (the CBs hold 2 blocks)
    const uint32_t n_blk = get_arg_val<uint32_t>(8);  // output tiles per group (2 * n_blk fit in DST)

    const auto x_acc = TensorAccessor(x_args, x_addr, get_tile_size(cb_x));
    const auto w1_acc = TensorAccessor(w1_args, w1_addr, get_tile_size(cb_w1));
    const auto w3_acc = TensorAccessor(w3_args, w3_addr, get_tile_size(cb_w3));
    const uint32_t w_tile = get_tile_size(cb_w1);

    const uint32_t tile_end = tile_start + tile_count;
    for (uint32_t t = tile_start; t < tile_end;) {
        const uint32_t m = t / nt;
        const uint32_t n0 = t % nt;
        uint32_t g = nt - n0;  // the group stops at the row end, the range end and n_blk
        if (g > n_blk) g = n_blk;
        if (g > tile_end - t) g = tile_end - t;
        for (uint32_t k0 = 0; k0 < kt; k0 += k_blk) {
            cb_reserve_back(cb_x, k_blk);
            cb_reserve_back(cb_w1, k_blk * n_blk);
            cb_reserve_back(cb_w3, k_blk * n_blk);
            const uint32_t lx = get_write_ptr(cb_x);
            const uint32_t l1 = get_write_ptr(cb_w1);
            const uint32_t l3 = get_write_ptr(cb_w3);
            for (uint32_t i = 0; i < k_blk; ++i) {
                noc_async_read_page(m * kt + k0 + i, x_acc, lx + i * get_tile_size(cb_x));
                for (uint32_t j = 0; j < g; ++j) {
                    const uint32_t page = (k0 + i) * nt + n0 + j;
                    noc_async_read_page(page, w1_acc, l1 + (i * n_blk + j) * w_tile);
                    noc_async_read_page(page, w3_acc, l3 + (i * n_blk + j) * w_tile);
                }
            }
            noc_async_read_barrier();
            cb_push_back(cb_x, k_blk);
            cb_push_back(cb_w1, k_blk * n_blk);
            cb_push_back(cb_w3, k_blk * n_blk);
        }
        t += g;
    }
}
