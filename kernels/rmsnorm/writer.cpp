// RMSNorm writer: per tile row, FUSE_RESIDUAL's h = x + residual blocks (pass 1), then the normalized blocks (pass 2).
#include <stdint.h>
#include "api/dataflow/dataflow_api.h"
#include "rmsnorm_common.h"

template <typename Accessor>
inline void write_block(uint32_t cb, const Accessor& acc, uint32_t first, uint32_t n) {
    cb_wait_front(cb, n);
    uint32_t l1 = get_read_ptr(cb);
    for (uint32_t i = 0; i < n; ++i) {
        noc_async_write_page(first + i, acc, l1);
        l1 += get_tile_size(cb);
    }
    noc_async_write_barrier();
    cb_pop_front(cb, n);
}

void kernel_main() {
    constexpr auto out_args = TensorAccessorArgs<0>();
    constexpr auto h_args = TensorAccessorArgs<out_args.next_compile_time_args_offset()>();

    const uint32_t out_addr = get_arg_val<uint32_t>(0);
    const uint32_t h_addr = get_arg_val<uint32_t>(1);
    const uint32_t wt = get_arg_val<uint32_t>(2);
    const uint32_t row_start = get_arg_val<uint32_t>(3);
    const uint32_t row_count = get_arg_val<uint32_t>(4);
    const uint32_t blk = get_arg_val<uint32_t>(5);

    const auto out_acc = TensorAccessor(out_args, out_addr, get_tile_size(cb_out));
#ifdef FUSE_RESIDUAL
    const auto h_acc = TensorAccessor(h_args, h_addr, get_tile_size(cb_h_out));
#endif

    for (uint32_t r = row_start; r < row_start + row_count; ++r) {
#ifdef FUSE_RESIDUAL
        for (uint32_t w = 0; w < wt; w += blk) {
            write_block(cb_h_out, h_acc, r * wt + w, blk);
        }
#endif
        for (uint32_t w = 0; w < wt; w += blk) {
            write_block(cb_out, out_acc, r * wt + w, blk);
        }
    }
}
