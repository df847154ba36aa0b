// Flash attention forward, compute (TRISCs): FA-2 online softmax over K/V chunks, one Q chunk at a time.
//
// Per K chunk:  S = scale * Q K^T (+ mask)      -> cb_s
//               m_new = max(m_old, rowmax(S))   -> cb_m   (running max, fp32)
//               P = exp(S - m_new)              -> cb_p
//               alpha = exp(m_old - m_new)      -> cb_alpha
//               l_new = alpha * l_old + rowsum(P) -> cb_l (running sum, fp32)
//               O_new = alpha * O_old + P V     -> cb_o   (running output)
// At the end:   out = O / l,  lse = m + log(l).
// The running l / o live in CBs with room for two generations: the old one is at the front, the new one is
// packed behind it, then the old one is popped. The running max is read old and new side by side, so it
// ping-pongs between two CBs (cb_m_a on even K chunks, cb_m_b on odd ones) to keep each block contiguous. Row statistics sit in column 0 of their tiles (REDUCE_ROW output)
// and are broadcast over columns with the *_bcast_cols ops.
#include <stdint.h>
#include "api/compute/compute_kernel_hw_startup.h"
#include "api/compute/compute_kernel_api.h"
#include "api/compute/cb_api.h"
#include "api/compute/reg_api.h"
#include "api/compute/pack.h"
#include "api/compute/reconfig_data_format.h"
#include "api/compute/tile_move_copy.h"
#include "api/compute/matmul.h"
#include "api/compute/reduce.h"
#include "api/compute/bcast.h"
#include "api/compute/eltwise_binary_sfpu.h"
#include "api/compute/binary_max_min.h"
#include "api/compute/eltwise_unary/exp.h"
#include "api/compute/eltwise_unary/recip.h"
#include "api/compute/eltwise_unary/binop_with_scalar.h"
#include "attention_common.h"

// Pack DST tile 0 into `cb` (one tile) and hand DST back.
inline void pack_dst0(uint32_t cb) {
    tile_regs_commit();
    tile_regs_wait();
    pack_reconfig_data_format(cb);
    pack_tile(0, cb);
    tile_regs_release();
}

void kernel_main() {
    // Shapes are runtime args so that one compiled kernel serves every shape (the CBs are sized by the host).
    const uint32_t q_chunk_t = get_arg_val<uint32_t>(0);  // Q chunk rows, in tiles
    const uint32_t k_chunk_t = get_arg_val<uint32_t>(1);  // K/V chunk rows, in tiles
    const uint32_t dh_t = get_arg_val<uint32_t>(2);       // head_dim / 32
    const uint32_t sq_t = get_arg_val<uint32_t>(3);
    const uint32_t sk_t = get_arg_val<uint32_t>(4);
    const uint32_t causal = get_arg_val<uint32_t>(5);
    const uint32_t k_full_t = get_arg_val<uint32_t>(6);
    const uint32_t work_start = get_arg_val<uint32_t>(7);
    const uint32_t work_count = get_arg_val<uint32_t>(8);
    const uint32_t scale_bits = get_arg_val<uint32_t>(9);  // softmax scale as fp32 bits
    const uint32_t window = get_arg_val<uint32_t>(10);     // sliding window in keys, 0 = none
    const uint32_t q_tiles = q_chunk_t * dh_t;
    const uint32_t kv_tiles = k_chunk_t * dh_t;
    const uint32_t s_tiles = q_chunk_t * k_chunk_t;

    const uint32_t nq = sq_t / q_chunk_t;
    const uint32_t nk_all = sk_t / k_chunk_t;

    compute_kernel_hw_startup<SrcOrder::Reverse>(cb_q, cb_k, cb_s);  // matmul operand order, as tt-metal's sdpa
    cb_wait_front(cb_scaler, 1);

    for (uint32_t w = work_start; w < work_start + work_count; ++w) {
        const uint32_t q0 = zigzag_q_chunk(w, nq) * q_chunk_t;
        const uint32_t nk = k_chunks_for(q0, q_chunk_t, k_chunk_t, nk_all, causal);

        const uint32_t kc_first = first_k_chunk(q0, k_chunk_t, window);

        cb_wait_front(cb_q, q_tiles);
        for (uint32_t kc = kc_first; kc < nk; ++kc) {
            const uint32_t k0 = kc * k_chunk_t;
            const bool first = kc == kc_first;
            const bool masked = block_masked(q0, k0, q_chunk_t, k_chunk_t, k_full_t, causal, window);
            const uint32_t cb_m = (kc % 2 == 0) ? cb_m_a : cb_m_b;     // this chunk's max
            const uint32_t cb_m_old = (kc % 2 == 0) ? cb_m_b : cb_m_a;  // the previous chunk's max

            // S = scale * Q K^T (+ mask).
            cb_wait_front(cb_k, kv_tiles);
            if (masked) {
                cb_wait_front(cb_mask, s_tiles);
            }
            cb_reserve_back(cb_s, s_tiles);
            for (uint32_t qt = 0; qt < q_chunk_t; ++qt) {
                for (uint32_t kt = 0; kt < k_chunk_t; ++kt) {
                    tile_regs_acquire();
                    reconfig_data_format(cb_k, cb_q);  // matmul maps in0 -> SrcB, in1 -> SrcA
                    matmul_init(cb_q, cb_k, 1 /* transpose K tiles */);
                    for (uint32_t dt = 0; dt < dh_t; ++dt) {
                        matmul_tiles(cb_q, cb_k, qt * dh_t + dt, kt * dh_t + dt, 0);
                    }
                    binop_with_scalar_tile_init();
                    mul_unary_tile(0, scale_bits);
                    if (masked) {
                        reconfig_data_format_srca(cb_mask);
                        copy_init(cb_mask);
                        copy_tile(cb_mask, qt * k_chunk_t + kt, 1);
                        add_binary_tile_init();
                        add_binary_tile(0, 1, 0);
                    }
                    pack_dst0(cb_s);
                }
            }
            cb_push_back(cb_s, s_tiles);
            cb_pop_front(cb_k, kv_tiles);
            if (masked) {
                cb_pop_front(cb_mask, s_tiles);
            }

            // m_new = max(m_old, rowmax(S)).
            cb_wait_front(cb_s, s_tiles);
            if (!first) {
                cb_wait_front(cb_m_old, q_chunk_t);
            }
            cb_reserve_back(cb_m, q_chunk_t);
            for (uint32_t qt = 0; qt < q_chunk_t; ++qt) {
                tile_regs_acquire();
                reconfig_data_format(cb_s, cb_scaler);
                reduce_init<PoolType::MAX, ReduceDim::REDUCE_ROW>(cb_s, cb_scaler, cb_m);
                for (uint32_t kt = 0; kt < k_chunk_t; ++kt) {
                    reduce_tile<PoolType::MAX, ReduceDim::REDUCE_ROW>(cb_s, cb_scaler, qt * k_chunk_t + kt, 0, 0);
                }
                reduce_uninit();
                if (!first) {
                    reconfig_data_format_srca(cb_m_old);
                    copy_init(cb_m_old);
                    copy_tile(cb_m_old, qt, 1);
                    binary_max_tile_init();
                    binary_max_tile(0, 1, 0);
                }
                pack_dst0(cb_m);
            }
            cb_push_back(cb_m, q_chunk_t);
            cb_wait_front(cb_m, q_chunk_t);

            // P = exp(S - m_new).
            cb_reserve_back(cb_p, s_tiles);
            for (uint32_t qt = 0; qt < q_chunk_t; ++qt) {
                for (uint32_t kt = 0; kt < k_chunk_t; ++kt) {
                    tile_regs_acquire();
                    reconfig_data_format(cb_s, cb_m);
                    sub_bcast_cols_init(cb_s, cb_m);
                    sub_tiles_bcast_cols(cb_s, cb_m, qt * k_chunk_t + kt, qt, 0);
                    exp_tile_init();
                    exp_tile(0);
                    pack_dst0(cb_p);
                }
            }
            cb_push_back(cb_p, s_tiles);
            cb_pop_front(cb_s, s_tiles);

            // alpha = exp(m_old - m_new); l_new = alpha * l_old + rowsum(P).
            cb_wait_front(cb_p, s_tiles);
            if (!first) {
                cb_wait_front(cb_l, q_chunk_t);
                cb_reserve_back(cb_alpha, q_chunk_t);
            }
            cb_reserve_back(cb_l, q_chunk_t);
            for (uint32_t qt = 0; qt < q_chunk_t; ++qt) {
                if (!first) {
                    tile_regs_acquire();
                    reconfig_data_format_srca(cb_m_old);
                    copy_init(cb_m_old);
                    copy_tile(cb_m_old, qt, 0);
                    copy_init(cb_m);
                    copy_tile(cb_m, qt, 1);
                    sub_binary_tile_init();
                    sub_binary_tile(0, 1, 0);
                    exp_tile_init();
                    exp_tile(0);
                    pack_dst0(cb_alpha);
                }
                tile_regs_acquire();
                reconfig_data_format(cb_scaler, cb_p);  // SUM over rows swaps operands: scaler in srcA
                reduce_init<PoolType::SUM, ReduceDim::REDUCE_ROW>(cb_p, cb_scaler, cb_l);
                for (uint32_t kt = 0; kt < k_chunk_t; ++kt) {
                    reduce_tile<PoolType::SUM, ReduceDim::REDUCE_ROW>(cb_p, cb_scaler, qt * k_chunk_t + kt, 0, 0);
                }
                reduce_uninit();
                if (!first) {
                    // alpha is recomputed in DST rather than read back from cb_alpha, which is not pushed yet.
                    reconfig_data_format_srca(cb_m_old);
                    copy_init(cb_m_old);
                    copy_tile(cb_m_old, qt, 1);
                    copy_init(cb_m);
                    copy_tile(cb_m, qt, 2);
                    sub_binary_tile_init();
                    sub_binary_tile(1, 2, 1);
                    exp_tile_init();
                    exp_tile(1);
                    reconfig_data_format_srca(cb_l);
                    copy_init(cb_l);
                    copy_tile(cb_l, qt, 2);
                    mul_binary_tile_init();
                    mul_binary_tile(1, 2, 1);
                    add_binary_tile_init();
                    add_binary_tile(0, 1, 0);
                }
                pack_dst0(cb_l);
            }
            cb_push_back(cb_l, q_chunk_t);
            if (!first) {
                cb_push_back(cb_alpha, q_chunk_t);
                cb_pop_front(cb_l, q_chunk_t);  // drop l_old
                cb_pop_front(cb_m_old, q_chunk_t);  // drop m_old
            }

            // O_new = alpha * O_old + P V.
            cb_wait_front(cb_v, kv_tiles);
            if (!first) {
                cb_wait_front(cb_o, q_tiles);
                cb_wait_front(cb_alpha, q_chunk_t);
            }
            cb_reserve_back(cb_o, q_tiles);
            for (uint32_t qt = 0; qt < q_chunk_t; ++qt) {
                for (uint32_t dt = 0; dt < dh_t; ++dt) {
                    tile_regs_acquire();
                    reconfig_data_format(cb_v, cb_p);  // matmul maps in0 -> SrcB, in1 -> SrcA (as tt-metal's sdpa)
                    matmul_init(cb_p, cb_v, 0);
                    for (uint32_t kt = 0; kt < k_chunk_t; ++kt) {
                        matmul_tiles(cb_p, cb_v, qt * k_chunk_t + kt, kt * dh_t + dt, 0);
                    }
                    if (!first) {
                        reconfig_data_format(cb_o, cb_alpha);
                        mul_bcast_cols_init(cb_o, cb_alpha);
                        mul_tiles_bcast_cols(cb_o, cb_alpha, qt * dh_t + dt, qt, 1);
                        add_binary_tile_init();
                        add_binary_tile(0, 1, 0);
                    }
                    pack_dst0(cb_o);
                }
            }
            cb_push_back(cb_o, q_tiles);
            cb_pop_front(cb_v, kv_tiles);
            cb_pop_front(cb_p, s_tiles);
            if (!first) {
                cb_pop_front(cb_o, q_tiles);
                cb_pop_front(cb_alpha, q_chunk_t);
            }
        }
        cb_pop_front(cb_q, q_tiles);

        // out = O / l and lse = m + log(l). m, l and O are now the only generation in their CBs.
        const uint32_t cb_m = ((nk - 1) % 2 == 0) ? cb_m_a : cb_m_b;
        cb_wait_front(cb_m, q_chunk_t);
        cb_wait_front(cb_l, q_chunk_t);
        cb_wait_front(cb_o, q_tiles);
        cb_reserve_back(cb_linv, q_chunk_t);
        cb_reserve_back(cb_lse, q_chunk_t);
        for (uint32_t qt = 0; qt < q_chunk_t; ++qt) {
            tile_regs_acquire();
            reconfig_data_format_srca(cb_l);
            copy_init(cb_l);
            copy_tile(cb_l, qt, 0);
            recip_tile_init();
            recip_tile(0);
            pack_dst0(cb_linv);

            tile_regs_acquire();
            copy_init(cb_l);
            copy_tile(cb_l, qt, 1);
            log_tile_init();
            log_tile(1);
            reconfig_data_format_srca(cb_m);
            copy_init(cb_m);
            copy_tile(cb_m, qt, 0);
            add_binary_tile_init();
            add_binary_tile(0, 1, 0);
            pack_dst0(cb_lse);
        }
        cb_push_back(cb_linv, q_chunk_t);
        cb_push_back(cb_lse, q_chunk_t);

        cb_wait_front(cb_linv, q_chunk_t);
        cb_reserve_back(cb_out, q_tiles);
        for (uint32_t qt = 0; qt < q_chunk_t; ++qt) {
            for (uint32_t dt = 0; dt < dh_t; ++dt) {
                tile_regs_acquire();
                reconfig_data_format(cb_o, cb_linv);
                mul_bcast_cols_init(cb_o, cb_linv);
                mul_tiles_bcast_cols(cb_o, cb_linv, qt * dh_t + dt, qt, 0);
                pack_dst0(cb_out);
            }
        }
        cb_push_back(cb_out, q_tiles);
        cb_pop_front(cb_linv, q_chunk_t);
        cb_pop_front(cb_o, q_tiles);
        cb_pop_front(cb_l, q_chunk_t);
        cb_pop_front(cb_m, q_chunk_t);
    }
    cb_pop_front(cb_scaler, 1);
}
