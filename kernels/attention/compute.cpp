// Flash attention forward, compute (TRISCs): FA-2 online softmax over K/V chunks, one Q chunk at a time.
//
// Scores stay in unscaled units (as tt-metal's sdpa): the softmax scale s is applied inside the exponent.
// Per K chunk:  S = Q K^T (+ mask)                      -> cb_s   (mask preloaded into DST, the matmul adds to it)
//               m_new = max(m_old, rowmax(S))           -> cb_m   (running max, fp32, unscaled; m_old preloaded)
//               P = exp(s (S - m_new))                  -> cb_p
//               alpha = exp(s (m_old - m_new))          -> cb_alpha, computed once per row tile and used twice:
//               l_new = alpha * l_old + rowsum(P)       -> cb_l   (running sum, fp32; alpha from DST, exact)
//               O_new = alpha * O_old + P V             -> cb_o   (running output; alpha from cb_alpha)
// At the end:   out = O / l,  lse = s m + log(l).
// The scale: exp_tile's scale operand is a bf16 immediate (SFPMULI / sFloat16b in the LLK), so when s is a bf16
// value (scale_fold = 1: 1/8 for head_dim 64, 1.0, 0.5, ...) it is folded into exp_tile; otherwise the exponent is
// multiplied by the fp32 s with mul_unary_tile in the same DST pass first (the accurate path of tt-metal's sdpa),
// so the softmax is exactly that of the requested scale either way.
// The running l / o live in CBs with room for two generations: the old one is at the front, the new one is
// packed behind it, then the old one is popped. The running max is read old and new side by side, so it
// ping-pongs between two CBs (cb_m_a on even K chunks, cb_m_b on odd ones) to keep each block contiguous. Row
// statistics sit in column 0 of their tiles (REDUCE_ROW output) and are broadcast over columns with the
// *_bcast_cols ops. Tiles are processed up to DST_TILES per DST acquire, with each op's init once per block
// where the ops of a pass allow it (an init costs a pipeline drain: tilegraph/perf/model.py INIT_CYCLES).
// K tiles arrive transposed in cb_k ([dh_t][k_chunk_t], reader.cpp) so that a row of score tiles is one
// matmul_block per head-dim tile.
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
#include "api/compute/eltwise_unary/exp.h"
#include "api/compute/eltwise_unary/recip.h"
#include "api/compute/eltwise_unary/binop_with_scalar.h"
#include "attention_common.h"
#include "attention_formats.h"

constexpr uint32_t DST_TILES = 4;  // DST capacity with fp32_dest_acc_en (half sync)

// exp(s * DST[i]) for i in [i0, i0 + n); on return the SFPU holds exp's init.
inline void exp_scaled(uint32_t i0, uint32_t n, uint32_t scale_bits, uint32_t scale_fold) {
    if (scale_fold) {
        exp_tile_init();
        for (uint32_t i = i0; i < i0 + n; ++i) {
            exp_tile<false, true>(i, VectorMode::RC, uint16_t(scale_bits >> 16));
        }
    } else {
        binop_with_scalar_tile_init();
        for (uint32_t i = i0; i < i0 + n; ++i) {
            mul_unary_tile(i, scale_bits);
        }
        exp_tile_init();
        for (uint32_t i = i0; i < i0 + n; ++i) {
            exp_tile(i);
        }
    }
}

inline uint32_t group(uint32_t left) { return left < DST_TILES ? left : DST_TILES; }

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
    const uint32_t scale_fold = get_arg_val<uint32_t>(11);  // 1: the scale is a bf16 value (low 16 bits zero)
    const uint32_t q_tiles = q_chunk_t * dh_t;
    const uint32_t kv_tiles = k_chunk_t * dh_t;
    const uint32_t s_tiles = q_chunk_t * k_chunk_t;

    const uint32_t nq = sq_t / q_chunk_t;
    const uint32_t nk_all = sk_t / k_chunk_t;

    compute_kernel_hw_startup<SrcOrder::Reverse>(cb_q, cb_k, cb_s);  // matmul operand order, as tt-metal's sdpa
    Formats fmt{cb_k, cb_q, cb_s};                                     // SrcA, SrcB, pack as the startup set them
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

            // S = Q K^T (+ mask): DST starts as the mask tile (copied in) or zero, and the matmul accumulates.
            cb_wait_front(cb_k, kv_tiles);
            if (masked) {
                cb_wait_front(cb_mask, s_tiles);
            }
            cb_reserve_back(cb_s, s_tiles);
            fmt.src(cb_k, cb_q);  // matmul maps in0 -> SrcB, in1 -> SrcA
            fmt.out(cb_s);
            uint32_t ct_init = 0;  // ct of the last matmul_block_init (0: the FPU holds another op)
            for (uint32_t qt = 0; qt < q_chunk_t; ++qt) {
                for (uint32_t kt0 = 0; kt0 < k_chunk_t; kt0 += DST_TILES) {
                    const uint32_t g = group(k_chunk_t - kt0);
                    tile_regs_acquire();
                    if (masked) {
                        fmt.srca(cb_mask);
                        copy_init(cb_mask);
                        for (uint32_t j = 0; j < g; ++j) {
                            copy_tile(cb_mask, qt * k_chunk_t + kt0 + j, j);
                        }
                        fmt.srca(cb_k);  // matmul maps in0 -> SrcB, in1 -> SrcA
                        ct_init = 0;
                    }
                    if (ct_init != g) {
                        matmul_block_init(cb_q, cb_k, 1 /* transpose K tiles */, g, 1, dh_t);
                        ct_init = g;
                    }
                    for (uint32_t dt = 0; dt < dh_t; ++dt) {
                        matmul_block(cb_q, cb_k, qt * dh_t + dt, dt * k_chunk_t + kt0, 0, 1, g, 1, dh_t);
                    }
                    tile_regs_commit();
                    tile_regs_wait();
                    for (uint32_t j = 0; j < g; ++j) {
                        pack_tile(j, cb_s);
                    }
                    tile_regs_release();
                }
            }
            cb_push_back(cb_s, s_tiles);
            cb_pop_front(cb_k, kv_tiles);
            if (masked) {
                cb_pop_front(cb_mask, s_tiles);
            }

            // m_new = max(m_old, rowmax(S)): the reduce starts from m_old copied into DST (fresh on the first chunk).
            cb_wait_front(cb_s, s_tiles);
            if (!first) {
                cb_wait_front(cb_m_old, q_chunk_t);
            }
            cb_reserve_back(cb_m, q_chunk_t);
            fmt.out(cb_m);
            for (uint32_t qt0 = 0; qt0 < q_chunk_t; qt0 += DST_TILES) {
                const uint32_t g = group(q_chunk_t - qt0);
                tile_regs_acquire();
                if (!first) {
                    fmt.srca(cb_m_old);
                    copy_init(cb_m_old);
                    for (uint32_t j = 0; j < g; ++j) {
                        copy_tile(cb_m_old, qt0 + j, j);
                    }
                }
                fmt.src(cb_s, cb_scaler);
                reduce_init<PoolType::MAX, ReduceDim::REDUCE_ROW>(cb_s, cb_scaler, cb_m);
                for (uint32_t j = 0; j < g; ++j) {
                    for (uint32_t kt = 0; kt < k_chunk_t; ++kt) {
                        reduce_tile<PoolType::MAX, ReduceDim::REDUCE_ROW>(cb_s, cb_scaler, (qt0 + j) * k_chunk_t + kt,
                                                                         0, j);
                    }
                }
                tile_regs_commit();
                tile_regs_wait();
                for (uint32_t j = 0; j < g; ++j) {
                    pack_tile(j, cb_m);  // the reduce's edge mask zeroes all but column 0
                }
                tile_regs_release();
                reduce_uninit();
            }
            cb_push_back(cb_m, q_chunk_t);
            cb_wait_front(cb_m, q_chunk_t);

            // P = exp(s (S - m_new)).
            cb_reserve_back(cb_p, s_tiles);
            fmt.src(cb_s, cb_m);
            fmt.out(cb_p);
            sub_bcast_cols_init(cb_s, cb_m);
            for (uint32_t qt = 0; qt < q_chunk_t; ++qt) {
                for (uint32_t kt0 = 0; kt0 < k_chunk_t; kt0 += DST_TILES) {
                    const uint32_t g = group(k_chunk_t - kt0);
                    tile_regs_acquire();
                    for (uint32_t j = 0; j < g; ++j) {
                        sub_tiles_bcast_cols(cb_s, cb_m, qt * k_chunk_t + kt0 + j, qt, j);
                    }
                    exp_scaled(0, g, scale_bits, scale_fold);
                    tile_regs_commit();
                    tile_regs_wait();
                    for (uint32_t j = 0; j < g; ++j) {
                        pack_tile(j, cb_p);
                    }
                    tile_regs_release();
                }
            }
            cb_push_back(cb_p, s_tiles);
            cb_pop_front(cb_s, s_tiles);

            // alpha = exp(s (m_old - m_new)) once per row tile, in DST 1; l_new = alpha * l_old + rowsum(P): the
            // row-sum reduce accumulates into alpha * l_old in DST 0. Both are packed from the same DST section.
            cb_wait_front(cb_p, s_tiles);
            if (!first) {
                cb_wait_front(cb_l, q_chunk_t);
                cb_reserve_back(cb_alpha, q_chunk_t);
            }
            cb_reserve_back(cb_l, q_chunk_t);
            fmt.out(cb_l);  // cb_alpha is float32 too
            for (uint32_t qt = 0; qt < q_chunk_t; ++qt) {
                tile_regs_acquire();
                if (!first) {
                    fmt.srca(cb_m_old);
                    copy_init(cb_m_old);
                    copy_tile(cb_m_old, qt, 1);
                    copy_init(cb_m);
                    copy_tile(cb_m, qt, 2);
                    sub_binary_tile_init();
                    sub_binary_tile(1, 2, 1);
                    exp_scaled(1, 1, scale_bits, scale_fold);
                    fmt.srca(cb_l);
                    copy_init(cb_l);  // unpacked straight to DST in fp32 (ComputeConfig.unpack_to_dest_fp32)
                    copy_tile(cb_l, qt, 0);
                    mul_binary_tile_init();
                    mul_binary_tile(0, 1, 0);
                }
                fmt.src(cb_scaler, cb_p);  // SUM over rows swaps operands: scaler in srcA
                reduce_init<PoolType::SUM, ReduceDim::REDUCE_ROW>(cb_p, cb_scaler, cb_l);
                for (uint32_t kt = 0; kt < k_chunk_t; ++kt) {
                    reduce_tile<PoolType::SUM, ReduceDim::REDUCE_ROW>(cb_p, cb_scaler, qt * k_chunk_t + kt, 0, 0);
                }
                tile_regs_commit();
                tile_regs_wait();
                pack_tile(0, cb_l);
                if (!first) {
                    pack_tile(1, cb_alpha);
                }
                tile_regs_release();
                reduce_uninit();
            }
            cb_push_back(cb_l, q_chunk_t);
            if (!first) {
                cb_push_back(cb_alpha, q_chunk_t);
                cb_pop_front(cb_l, q_chunk_t);  // drop l_old
                cb_pop_front(cb_m_old, q_chunk_t);  // drop m_old
            }

            // O_new = alpha * O_old + P V: DST starts as alpha * O_old (column-broadcast multiply), the matmul
            // accumulates P V into it.
            cb_wait_front(cb_v, kv_tiles);
            if (!first) {
                cb_wait_front(cb_o, q_tiles);
                cb_wait_front(cb_alpha, q_chunk_t);
            }
            cb_reserve_back(cb_o, q_tiles);
            fmt.out(cb_o);
            ct_init = 0;
            for (uint32_t qt = 0; qt < q_chunk_t; ++qt) {
                for (uint32_t dt0 = 0; dt0 < dh_t; dt0 += DST_TILES) {
                    const uint32_t g = group(dh_t - dt0);
                    tile_regs_acquire();
                    if (!first) {
                        fmt.src(cb_o, cb_alpha);
                        mul_bcast_cols_init(cb_o, cb_alpha);
                        for (uint32_t j = 0; j < g; ++j) {
                            mul_tiles_bcast_cols(cb_o, cb_alpha, qt * dh_t + dt0 + j, qt, j);
                        }
                        ct_init = 0;
                    }
                    if (ct_init != g) {
                        fmt.src(cb_v, cb_p);  // matmul maps in0 -> SrcB, in1 -> SrcA (as tt-metal's sdpa)
                        matmul_block_init(cb_p, cb_v, 0, g, 1, k_chunk_t);
                        ct_init = g;
                    }
                    for (uint32_t kt = 0; kt < k_chunk_t; ++kt) {
                        matmul_block(cb_p, cb_v, qt * k_chunk_t + kt, kt * dh_t + dt0, 0, 0, g, 1, k_chunk_t);
                    }
                    tile_regs_commit();
                    tile_regs_wait();
                    for (uint32_t j = 0; j < g; ++j) {
                        pack_tile(j, cb_o);
                    }
                    tile_regs_release();
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

        // out = O / l and lse = s m + log(l). m, l and O are now the only generation in their CBs.
        const uint32_t cb_m = ((nk - 1) % 2 == 0) ? cb_m_a : cb_m_b;
        cb_wait_front(cb_m, q_chunk_t);
        cb_wait_front(cb_l, q_chunk_t);
        cb_wait_front(cb_o, q_tiles);
        cb_reserve_back(cb_linv, q_chunk_t);
        cb_reserve_back(cb_lse, q_chunk_t);
        fmt.out(cb_linv);  // cb_lse is float32 too
        for (uint32_t qt = 0; qt < q_chunk_t; ++qt) {
            tile_regs_acquire();
            fmt.srca(cb_l);
            copy_init(cb_l);
            copy_tile(cb_l, qt, 0);
            copy_tile(cb_l, qt, 1);
            recip_tile_init();
            recip_tile(0);
            log_tile_init();
            log_tile(1);
            fmt.srca(cb_m);
            copy_init(cb_m);
            copy_tile(cb_m, qt, 2);
            binop_with_scalar_tile_init();
            mul_unary_tile(2, scale_bits);
            add_binary_tile_init();
            add_binary_tile(1, 2, 1);
            tile_regs_commit();
            tile_regs_wait();
            pack_tile(0, cb_linv);
            pack_tile(1, cb_lse);
            tile_regs_release();
        }
        cb_push_back(cb_linv, q_chunk_t);
        cb_push_back(cb_lse, q_chunk_t);

        cb_wait_front(cb_linv, q_chunk_t);
        cb_reserve_back(cb_out, q_tiles);
        fmt.src(cb_o, cb_linv);
        fmt.out(cb_out);
        mul_bcast_cols_init(cb_o, cb_linv);
        for (uint32_t qt = 0; qt < q_chunk_t; ++qt) {
            for (uint32_t dt0 = 0; dt0 < dh_t; dt0 += DST_TILES) {
                const uint32_t g = group(dh_t - dt0);
                tile_regs_acquire();
                for (uint32_t j = 0; j < g; ++j) {
                    mul_tiles_bcast_cols(cb_o, cb_linv, qt * dh_t + dt0 + j, qt, j);
                }
                tile_regs_commit();
                tile_regs_wait();
                for (uint32_t j = 0; j < g; ++j) {
                    pack_tile(j, cb_out);
                }
                tile_regs_release();
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
