// Attention backward, writer (RISC-V 1): drains dK and dV of each pass-1 unit (one K/V chunk of one (batch,
// kv head)) and dQ of each pass-2 unit (one Q chunk of one (batch, head)) to DRAM. Each output tile is written
// by exactly one core, once.
#include <stdint.h>
#include "api/dataflow/dataflow_api.h"
#include "attention_bwd_common.h"

template <typename Acc>
inline void write_chunk(uint32_t cb, const Acc& acc, uint32_t bh, uint32_t s_t, uint32_t row0, uint32_t rows,
                        uint32_t dh_t) {
    cb_wait_front(cb, rows * dh_t);
    uint32_t l1 = get_read_ptr(cb);
    for (uint32_t r = 0; r < rows; ++r) {
        for (uint32_t dt = 0; dt < dh_t; ++dt) {
            noc_async_write_page((bh * s_t + row0 + r) * dh_t + dt, acc, l1);
            l1 += get_tile_size(cb);
        }
    }
    noc_async_write_barrier();
    cb_pop_front(cb, rows * dh_t);
}

void kernel_main() {
    constexpr auto dq_args = TensorAccessorArgs<0>();
    constexpr auto dk_args = TensorAccessorArgs<dq_args.next_compile_time_args_offset()>();
    constexpr auto dv_args = TensorAccessorArgs<dk_args.next_compile_time_args_offset()>();

    const uint32_t s_t = get_arg_val<uint32_t>(3);
    const uint32_t kv_start = get_arg_val<uint32_t>(4);
    const uint32_t kv_count = get_arg_val<uint32_t>(5);
    const uint32_t q_start = get_arg_val<uint32_t>(6);
    const uint32_t q_count = get_arg_val<uint32_t>(7);
    const uint32_t q_chunk_t = get_arg_val<uint32_t>(8);
    const uint32_t k_chunk_t = get_arg_val<uint32_t>(9);
    const uint32_t dh_t = get_arg_val<uint32_t>(10);

    const auto dq_acc = TensorAccessor(dq_args, get_arg_val<uint32_t>(0), get_tile_size(bwd::cb_dq));
    const auto dk_acc = TensorAccessor(dk_args, get_arg_val<uint32_t>(1), get_tile_size(bwd::cb_dk));
    const auto dv_acc = TensorAccessor(dv_args, get_arg_val<uint32_t>(2), get_tile_size(bwd::cb_dv));
    const uint32_t nq = s_t / q_chunk_t;
    const uint32_t nk = s_t / k_chunk_t;

    for (uint32_t w = kv_start; w < kv_start + kv_count; ++w) {
        const uint32_t k0 = zigzag_q_chunk(w, nk) * k_chunk_t;
        write_chunk(bwd::cb_dk, dk_acc, w / nk, s_t, k0, k_chunk_t, dh_t);
        write_chunk(bwd::cb_dv, dv_acc, w / nk, s_t, k0, k_chunk_t, dh_t);
    }
    for (uint32_t w = q_start; w < q_start + q_count; ++w) {
        const uint32_t q0 = zigzag_q_chunk(w, nq) * q_chunk_t;
        write_chunk(bwd::cb_dq, dq_acc, w / nq, s_t, q0, q_chunk_t, dh_t);
    }
}
