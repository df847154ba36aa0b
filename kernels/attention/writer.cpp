// Flash attention forward, writer (RISC-V 1): drains output and log-sum-exp tiles of each Q chunk to DRAM.
// The lse tensor holds one tile per query tile row; the row's value is in column 0 (the builder's host side
// reads that column back).
#include <stdint.h>
#include "api/dataflow/dataflow_api.h"
#include "attention_common.h"

void kernel_main() {
    constexpr auto out_args = TensorAccessorArgs<0>();
    constexpr auto lse_args = TensorAccessorArgs<out_args.next_compile_time_args_offset()>();

    const uint32_t out_addr = get_arg_val<uint32_t>(0);
    const uint32_t lse_addr = get_arg_val<uint32_t>(1);
    const uint32_t sq_t = get_arg_val<uint32_t>(2);
    const uint32_t work_start = get_arg_val<uint32_t>(3);
    const uint32_t work_count = get_arg_val<uint32_t>(4);
    const uint32_t q_chunk_t = get_arg_val<uint32_t>(5);
    const uint32_t dh_t = get_arg_val<uint32_t>(6);

    const auto out_acc = TensorAccessor(out_args, out_addr, get_tile_size(cb_out));
    const auto lse_acc = TensorAccessor(lse_args, lse_addr, get_tile_size(cb_lse));
    const uint32_t nq = sq_t / q_chunk_t;

    for (uint32_t w = work_start; w < work_start + work_count; ++w) {
        const uint32_t bh = w / nq;
        const uint32_t q0 = zigzag_q_chunk(w, nq) * q_chunk_t;

        // One barrier per Q chunk: the lse and output tiles of the chunk are all in flight together.
        cb_wait_front(cb_lse, q_chunk_t);
        uint32_t l1 = get_read_ptr(cb_lse);
        for (uint32_t qt = 0; qt < q_chunk_t; ++qt) {
            noc_async_write_page(bh * sq_t + q0 + qt, lse_acc, l1);
            l1 += get_tile_size(cb_lse);
        }
        cb_wait_front(cb_out, q_chunk_t * dh_t);
        l1 = get_read_ptr(cb_out);
        for (uint32_t qt = 0; qt < q_chunk_t; ++qt) {
            for (uint32_t dt = 0; dt < dh_t; ++dt) {
                noc_async_write_page((bh * sq_t + q0 + qt) * dh_t + dt, out_acc, l1);
                l1 += get_tile_size(cb_out);
            }
        }
        noc_async_write_barrier();
        cb_pop_front(cb_lse, q_chunk_t);
        cb_pop_front(cb_out, q_chunk_t * dh_t);
    }
}
