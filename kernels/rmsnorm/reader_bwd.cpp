// RMSNorm backward reader: the selector tiles once, then per tile row the row of x, dy and gamma twice in width
// blocks (pass 1: sums of x^2 and x*dy*gamma; pass 2: dx and dgamma), so L1 holds a few blocks, never the row
// (hidden 8192 = 256 tiles streams like the forward).
#include <stdint.h>
#include "api/dataflow/dataflow_api.h"
#include "rmsnorm_bwd_common.h"

constexpr uint32_t CONST_SCALER = 0;  // tile 0 of the consts tensor; tiles 1.. are the selectors E_0, E_1, ...

template <typename Accessor>
inline void read_block(uint32_t cb, const Accessor& acc, uint32_t first, uint32_t n) {
    cb_reserve_back(cb, n);
    uint32_t l1 = get_write_ptr(cb);
    for (uint32_t i = 0; i < n; ++i) {
        noc_async_read_page(first + i, acc, l1);
        l1 += get_tile_size(cb);
    }
    noc_async_read_barrier();
    cb_push_back(cb, n);
}

void kernel_main() {
    constexpr auto x_args = TensorAccessorArgs<0>();
    constexpr auto dy_args = TensorAccessorArgs<x_args.next_compile_time_args_offset()>();
    constexpr auto gamma_args = TensorAccessorArgs<dy_args.next_compile_time_args_offset()>();
    constexpr auto c_args = TensorAccessorArgs<gamma_args.next_compile_time_args_offset()>();

    const uint32_t x_addr = get_arg_val<uint32_t>(0);
    const uint32_t dy_addr = get_arg_val<uint32_t>(1);
    const uint32_t gamma_addr = get_arg_val<uint32_t>(2);
    const uint32_t c_addr = get_arg_val<uint32_t>(3);
    const uint32_t wt = get_arg_val<uint32_t>(4);  // row width in tiles (a multiple of blk)
    const uint32_t row_start = get_arg_val<uint32_t>(5);
    const uint32_t row_count = get_arg_val<uint32_t>(6);
    const uint32_t blk = get_arg_val<uint32_t>(7);    // width block, tiles (divides wt; the CBs hold 2 blocks)
    const uint32_t group = get_arg_val<uint32_t>(8);  // width tiles per dgamma partial tile (selectors needed)

    const auto x_acc = TensorAccessor(x_args, x_addr, get_tile_size(cb_x));
    const auto dy_acc = TensorAccessor(dy_args, dy_addr, get_tile_size(cb_dy));
    const auto gamma_acc = TensorAccessor(gamma_args, gamma_addr, get_tile_size(cb_gamma));
    const auto c_acc = TensorAccessor(c_args, c_addr, get_tile_size(cb_scaler));

    read_block(cb_scaler, c_acc, CONST_SCALER, 1);
    read_block(cb_sel, c_acc, CONST_SCALER + 1, group);

    for (uint32_t r = row_start; r < row_start + row_count; ++r) {
        for (uint32_t pass = 0; pass < 2; ++pass) {
            for (uint32_t w = 0; w < wt; w += blk) {
                read_block(cb_x, x_acc, r * wt + w, blk);
                read_block(cb_dy, dy_acc, r * wt + w, blk);
                read_block(cb_gamma, gamma_acc, w, blk);
            }
        }
    }
}
