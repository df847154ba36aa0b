// RMSNorm backward writer: dx per tile row in width blocks, then this core's dgamma partials (one tile per width
// group) into row `core_slot` of the partials tensor. Every core writes only its own tile row of partials, so the
// cores never write the same page; the partials are summed afterwards in core order (program_bwd.py).
#include <stdint.h>
#include "api/dataflow/dataflow_api.h"
#include "rmsnorm_bwd_common.h"

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
    constexpr auto dx_args = TensorAccessorArgs<0>();
    constexpr auto dg_args = TensorAccessorArgs<dx_args.next_compile_time_args_offset()>();

    const uint32_t dx_addr = get_arg_val<uint32_t>(0);
    const uint32_t dg_addr = get_arg_val<uint32_t>(1);
    const uint32_t wt = get_arg_val<uint32_t>(2);
    const uint32_t row_start = get_arg_val<uint32_t>(3);
    const uint32_t row_count = get_arg_val<uint32_t>(4);
    const uint32_t blk = get_arg_val<uint32_t>(5);
    const uint32_t n_groups = get_arg_val<uint32_t>(6);  // partial tiles per core
    const uint32_t core_slot = get_arg_val<uint32_t>(7);  // this core's tile row in the partials tensor

    const auto dx_acc = TensorAccessor(dx_args, dx_addr, get_tile_size(cb_dx));
    const auto dg_acc = TensorAccessor(dg_args, dg_addr, get_tile_size(cb_dgamma));

    for (uint32_t r = row_start; r < row_start + row_count; ++r) {
        for (uint32_t w = 0; w < wt; w += blk) {
            write_block(cb_dx, dx_acc, r * wt + w, blk);
        }
    }
    for (uint32_t p = 0; p < n_groups; ++p) {
        write_block(cb_dgamma, dg_acc, core_slot * n_groups + p, 1);
    }
}
