// Attention backward, reader (RISC-V 0): streams the chunks of the two passes of compute_bwd.cpp.
//
// First the all-ones tile and the consts tiles the compute kernel masks score tiles with (once per run).
// Pass 1 (unit = one K/V chunk of one (batch, kv head)): K and V once, then per block (query head of the group,
// Q chunk reaching the K chunk) Q, dO, O, lse (row form).
// Pass 2 (unit = one Q chunk of one (batch, head)): Q, dO, O, lse (column form) once, then per K chunk it attends
// to K and V.
// Sliding window: pass 1 stops at the last Q chunk whose window still reaches the K chunk (end_q_chunk_for), pass 2
// starts at the first K chunk inside the Q chunk's window (first_k_chunk); nothing outside is read.
#include <stdint.h>
#include "api/dataflow/dataflow_api.h"
#include "attention_bwd_common.h"

// Read tiles [rows x dh_t] starting at tile row `row0` of head `bh` into `cb` (reserve .. push).
template <typename Acc>
inline void read_chunk(uint32_t cb, const Acc& acc, uint32_t bh, uint32_t s_t, uint32_t row0, uint32_t rows,
                       uint32_t dh_t) {
    cb_reserve_back(cb, rows * dh_t);
    uint32_t l1 = get_write_ptr(cb);
    for (uint32_t r = 0; r < rows; ++r) {
        for (uint32_t dt = 0; dt < dh_t; ++dt) {
            noc_async_read_page((bh * s_t + row0 + r) * dh_t + dt, acc, l1);
            l1 += get_tile_size(cb);
        }
    }
    noc_async_read_barrier();
    cb_push_back(cb, rows * dh_t);
}

void kernel_main() {
    constexpr auto q_args = TensorAccessorArgs<0>();
    constexpr auto k_args = TensorAccessorArgs<q_args.next_compile_time_args_offset()>();
    constexpr auto v_args = TensorAccessorArgs<k_args.next_compile_time_args_offset()>();
    constexpr auto do_args = TensorAccessorArgs<v_args.next_compile_time_args_offset()>();
    constexpr auto o_args = TensorAccessorArgs<do_args.next_compile_time_args_offset()>();
    constexpr auto lr_args = TensorAccessorArgs<o_args.next_compile_time_args_offset()>();
    constexpr auto lc_args = TensorAccessorArgs<lr_args.next_compile_time_args_offset()>();
    constexpr auto c_args = TensorAccessorArgs<lc_args.next_compile_time_args_offset()>();

    const uint32_t num_heads = get_arg_val<uint32_t>(8);
    const uint32_t num_kv_heads = get_arg_val<uint32_t>(9);
    const uint32_t s_t = get_arg_val<uint32_t>(10);  // padded sequence, tiles
    const uint32_t causal = get_arg_val<uint32_t>(11);
    // arg 12 (k_full_t, where padded keys start) only matters to the masks, which the compute kernel picks
    const uint32_t kv_start = get_arg_val<uint32_t>(13);
    const uint32_t kv_count = get_arg_val<uint32_t>(14);
    const uint32_t q_start = get_arg_val<uint32_t>(15);
    const uint32_t q_count = get_arg_val<uint32_t>(16);
    const uint32_t q_chunk_t = get_arg_val<uint32_t>(17);
    const uint32_t k_chunk_t = get_arg_val<uint32_t>(18);
    const uint32_t dh_t = get_arg_val<uint32_t>(19);
    const uint32_t window = get_arg_val<uint32_t>(20);  // sliding window in keys, 0 = none (causal only)

    const auto q_acc = TensorAccessor(q_args, get_arg_val<uint32_t>(0), get_tile_size(bwd::cb_q));
    const auto k_acc = TensorAccessor(k_args, get_arg_val<uint32_t>(1), get_tile_size(bwd::cb_k));
    const auto v_acc = TensorAccessor(v_args, get_arg_val<uint32_t>(2), get_tile_size(bwd::cb_v));
    const auto do_acc = TensorAccessor(do_args, get_arg_val<uint32_t>(3), get_tile_size(bwd::cb_do));
    const auto o_acc = TensorAccessor(o_args, get_arg_val<uint32_t>(4), get_tile_size(bwd::cb_o));
    const auto lr_acc = TensorAccessor(lr_args, get_arg_val<uint32_t>(5), get_tile_size(bwd::cb_lse));
    const auto lc_acc = TensorAccessor(lc_args, get_arg_val<uint32_t>(6), get_tile_size(bwd::cb_lse));
    const auto c_acc = TensorAccessor(c_args, get_arg_val<uint32_t>(7), get_tile_size(bwd::cb_mask));

    const uint32_t nq = s_t / q_chunk_t;
    const uint32_t nk = s_t / k_chunk_t;
    const uint32_t group = num_heads / num_kv_heads;

    cb_reserve_back(bwd::cb_ones, 1);
    noc_async_read_page(bwd::CONST_ONES, c_acc, get_write_ptr(bwd::cb_ones));
    // Every mask tile once per run: the compute kernel picks a score tile's mask from these by index, so masked
    // blocks cost no DRAM reads (all cores reading the same few consts pages would load a few banks).
    cb_reserve_back(bwd::cb_mask, bwd::NUM_CONSTS);
    for (uint32_t i = 0; i < bwd::NUM_CONSTS; ++i) {
        noc_async_read_page(i, c_acc, get_write_ptr(bwd::cb_mask) + i * get_tile_size(bwd::cb_mask));
    }
    noc_async_read_barrier();
    cb_push_back(bwd::cb_ones, 1);
    cb_push_back(bwd::cb_mask, bwd::NUM_CONSTS);

    // Pass 1: per K/V chunk, every Q chunk of every query head of its group that reaches it.
    for (uint32_t w = kv_start; w < kv_start + kv_count; ++w) {
        const uint32_t kv_bh = w / nk;
        const uint32_t k0 = zigzag_q_chunk(w, nk) * k_chunk_t;
        const uint32_t batch = kv_bh / num_kv_heads;
        const uint32_t j0 = bwd::first_q_chunk_for(k0, q_chunk_t, causal);
        const uint32_t j1 = bwd::end_q_chunk_for(k0, k_chunk_t, q_chunk_t, nq, window);
        read_chunk(bwd::cb_k, k_acc, kv_bh, s_t, k0, k_chunk_t, dh_t);
        read_chunk(bwd::cb_v, v_acc, kv_bh, s_t, k0, k_chunk_t, dh_t);
        for (uint32_t g = 0; g < group; ++g) {
            const uint32_t bh = batch * num_heads + (kv_bh % num_kv_heads) * group + g;
            for (uint32_t j = j0; j < j1; ++j) {
                const uint32_t q0 = j * q_chunk_t;
                read_chunk(bwd::cb_q, q_acc, bh, s_t, q0, q_chunk_t, dh_t);
                read_chunk(bwd::cb_do, do_acc, bh, s_t, q0, q_chunk_t, dh_t);
                read_chunk(bwd::cb_o, o_acc, bh, s_t, q0, q_chunk_t, dh_t);
                read_chunk(bwd::cb_lse, lr_acc, bh, s_t, q0, q_chunk_t, 1);
            }
        }
    }

    // Pass 2: per Q chunk, every K/V chunk it attends to.
    for (uint32_t w = q_start; w < q_start + q_count; ++w) {
        const uint32_t bh = w / nq;
        const uint32_t q0 = zigzag_q_chunk(w, nq) * q_chunk_t;
        const uint32_t batch = bh / num_heads;
        const uint32_t kv_bh = batch * num_kv_heads + (bh % num_heads) / group;
        read_chunk(bwd::cb_q, q_acc, bh, s_t, q0, q_chunk_t, dh_t);
        read_chunk(bwd::cb_do, do_acc, bh, s_t, q0, q_chunk_t, dh_t);
        read_chunk(bwd::cb_o, o_acc, bh, s_t, q0, q_chunk_t, dh_t);
        read_chunk(bwd::cb_lse, lc_acc, bh, s_t, q0, q_chunk_t, 1);
        const uint32_t k_end = k_chunks_for(q0, q_chunk_t, k_chunk_t, nk, causal);
        for (uint32_t kc = first_k_chunk(q0, k_chunk_t, window); kc < k_end; ++kc) {
            const uint32_t k0 = kc * k_chunk_t;
            read_chunk(bwd::cb_k, k_acc, kv_bh, s_t, k0, k_chunk_t, dh_t);
            read_chunk(bwd::cb_v, v_acc, kv_bh, s_t, k0, k_chunk_t, dh_t);
        }
    }
}
