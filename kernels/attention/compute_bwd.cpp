// Attention backward, compute (TRISCs): FlashAttention-2 backward with P rebuilt from Q, K and the forward's lse.
//
// Two passes over the same inputs, each race-free on its own (see kernels/attention/README.md):
//   pass 1, one unit = one K/V chunk of one (batch, kv head): loops over the query heads of its group and the Q
//     chunks that reach it, accumulating dK and dV in fp32 CBs; it works on the TRANSPOSED score block
//     (rows = keys), so that P^T and dS^T come out of the matrix engine directly and feed dV += P^T dO and
//     dK += dS^T Q without a tile transpose;
//   pass 2, one unit = one Q chunk of one (batch, head): loops over the K/V chunks it attends to, accumulating dQ.
// Per block, with R/C the block's row/column operands (pass 2: R = Q, C = K; pass 1: R = K, C = Q):
//   S = scale * R C^T (+ mask);  P = exp(S - lse)                       -> cb_p   (lse broadcast tile, fp32 in DST)
//   dP = dO V^T (pass 1: V dO^T); dS' = scale * P * (dP - D)            -> cb_ds  (D broadcast tile, fp32 in DST)
//   pass 2: dQ += dS' K;  pass 1: dK += dS'^T-block Q, dV += P^T-block dO (fp32 running sums, reloaded into DST)
// D = rowsum(dO * O) is made a broadcast tile by one matmul with an all-ones tile: X 1 (column form, every column
// holds the row sums) in pass 2, 1 X^T (row form) in pass 1.
// Sliding window (runtime arg `window`, 0 = none): each pass visits only the blocks inside the window, in the
// reader's order (pass 1: Q chunks j0 .. end_q_chunk_for, pass 2: K chunks first_k_chunk .. k_chunks_for); edge
// blocks carry the window mask the reader assembles, so their P (and so dS) is 0 outside the window.
#include <stdint.h>
#include "api/compute/compute_kernel_hw_startup.h"
#include "api/compute/compute_kernel_api.h"
#include "api/compute/cb_api.h"
#include "api/compute/reg_api.h"
#include "api/compute/pack.h"
#include "api/compute/reconfig_data_format.h"
#include "api/compute/tile_move_copy.h"
#include "api/compute/matmul.h"
#include "api/compute/eltwise_binary.h"
#include "api/compute/eltwise_binary_sfpu.h"
#include "api/compute/eltwise_unary/exp.h"
#include "api/compute/eltwise_unary/binop_with_scalar.h"
#include "attention_bwd_common.h"

// Pack DST tile 0 into `cb` (one tile) and hand DST back.
inline void pack_dst0(uint32_t cb) {
    tile_regs_commit();
    tile_regs_wait();
    pack_reconfig_data_format(cb);
    pack_tile(0, cb);
    tile_regs_release();
}

// Copy tile `index` of fp32 CB `cb` (unpacked to DST in fp32) into DST `idst`.
inline void load_fp32(uint32_t cb, uint32_t index, uint32_t idst) {
    reconfig_data_format_srca(cb);
    copy_init(cb);
    copy_tile(cb, index, idst);
}

// D = rowsum(dO * O) of the Q chunk now at the front of cb_do / cb_o, as broadcast tiles in cb_dbc (row form when
// `row_form`: tile qt holds D of query qt*32 + c in column c of every row). Pops cb_o.
inline void row_dot(uint32_t q_chunk_t, uint32_t dh_t, bool row_form) {
    const uint32_t q_tiles = q_chunk_t * dh_t;
    cb_wait_front(bwd::cb_o, q_tiles);
    cb_reserve_back(bwd::cb_prod, q_tiles);
    for (uint32_t t = 0; t < q_tiles; ++t) {
        tile_regs_acquire();
        reconfig_data_format(bwd::cb_do, bwd::cb_o);  // mul_tiles: in0 -> SrcA, in1 -> SrcB
        mul_init(bwd::cb_do, bwd::cb_o);
        mul_tiles(bwd::cb_do, bwd::cb_o, t, t, 0);
        pack_dst0(bwd::cb_prod);
    }
    cb_push_back(bwd::cb_prod, q_tiles);
    cb_pop_front(bwd::cb_o, q_tiles);

    cb_wait_front(bwd::cb_prod, q_tiles);
    cb_reserve_back(bwd::cb_dbc, q_chunk_t);
    for (uint32_t qt = 0; qt < q_chunk_t; ++qt) {
        tile_regs_acquire();
        if (row_form) {  // (1 X^T)[r, c] = sum_k X[c, k]
            reconfig_data_format(bwd::cb_prod, bwd::cb_ones);  // matmul maps in0 -> SrcB, in1 -> SrcA
            matmul_init(bwd::cb_ones, bwd::cb_prod, 1);
            for (uint32_t dt = 0; dt < dh_t; ++dt) {
                matmul_tiles(bwd::cb_ones, bwd::cb_prod, 0, qt * dh_t + dt, 0);
            }
        } else {  // (X 1)[r, c] = sum_k X[r, k]
            reconfig_data_format(bwd::cb_ones, bwd::cb_prod);
            matmul_init(bwd::cb_prod, bwd::cb_ones, 0);
            for (uint32_t dt = 0; dt < dh_t; ++dt) {
                matmul_tiles(bwd::cb_prod, bwd::cb_ones, qt * dh_t + dt, 0, 0);
            }
        }
        pack_dst0(bwd::cb_dbc);
    }
    cb_push_back(bwd::cb_dbc, q_chunk_t);
    cb_pop_front(bwd::cb_prod, q_tiles);
}

// One score block: P -> cb_p and scale * dS -> cb_ds, [rows_t x cols_t] tiles each, pushed. The operands are at
// the fronts of their CBs. pass 2: rows = Q (cb_rows = cb_q), cols = K, dP = dO V^T, per-query tiles indexed by
// the row; pass 1 (`transposed`): rows = K, cols = Q, dP^T = V dO^T, per-query tiles indexed by the column.
inline void score_block(uint32_t cb_rows, uint32_t cb_cols, uint32_t cb_rows2, uint32_t cb_cols2, uint32_t rows_t,
                        uint32_t cols_t, uint32_t dh_t, bool transposed, bool masked, uint32_t scale_bits) {
    const uint32_t s_tiles = rows_t * cols_t;
    if (masked) {
        cb_wait_front(bwd::cb_mask, s_tiles);
    }
    cb_reserve_back(bwd::cb_p, s_tiles);
    for (uint32_t r = 0; r < rows_t; ++r) {
        for (uint32_t c = 0; c < cols_t; ++c) {
            const uint32_t query = transposed ? c : r;
            tile_regs_acquire();
            reconfig_data_format(cb_cols, cb_rows);  // matmul maps in0 -> SrcB, in1 -> SrcA
            matmul_init(cb_rows, cb_cols, 1 /* transpose the column operand's tiles */);
            for (uint32_t dt = 0; dt < dh_t; ++dt) {
                matmul_tiles(cb_rows, cb_cols, r * dh_t + dt, c * dh_t + dt, 0);
            }
            binop_with_scalar_tile_init();
            mul_unary_tile(0, scale_bits);
            if (masked) {
                reconfig_data_format_srca(bwd::cb_mask);
                copy_init(bwd::cb_mask);
                copy_tile(bwd::cb_mask, r * cols_t + c, 1);
                add_binary_tile_init();
                add_binary_tile(0, 1, 0);
            }
            load_fp32(bwd::cb_lse, query, 1);
            sub_binary_tile_init();
            sub_binary_tile(0, 1, 0);
            exp_tile_init();
            exp_tile(0);
            pack_dst0(bwd::cb_p);
        }
    }
    cb_push_back(bwd::cb_p, s_tiles);
    if (masked) {
        cb_pop_front(bwd::cb_mask, s_tiles);
    }

    cb_wait_front(bwd::cb_p, s_tiles);
    cb_reserve_back(bwd::cb_ds, s_tiles);
    for (uint32_t r = 0; r < rows_t; ++r) {
        for (uint32_t c = 0; c < cols_t; ++c) {
            const uint32_t query = transposed ? c : r;
            tile_regs_acquire();
            reconfig_data_format(cb_cols2, cb_rows2);
            matmul_init(cb_rows2, cb_cols2, 1);
            for (uint32_t dt = 0; dt < dh_t; ++dt) {
                matmul_tiles(cb_rows2, cb_cols2, r * dh_t + dt, c * dh_t + dt, 0);
            }
            load_fp32(bwd::cb_dbc, query, 1);
            sub_binary_tile_init();
            sub_binary_tile(0, 1, 0);
            load_fp32(bwd::cb_p, r * cols_t + c, 1);
            mul_binary_tile_init();
            mul_binary_tile(0, 1, 0);
            binop_with_scalar_tile_init();
            mul_unary_tile(0, scale_bits);
            pack_dst0(bwd::cb_ds);
        }
    }
    cb_push_back(bwd::cb_ds, s_tiles);
}

// out[r, d] (+)= sum_c A[r, c] B[c, d] over a [rows_t x cols_t] block A and a [cols_t x dh_t] chunk B. The running
// sum lives in cb_acc (two generations: the old one at the front, the new one packed behind it); the last block
// packs into cb_out instead.
inline void accumulate(uint32_t cb_a, uint32_t cb_b, uint32_t cb_acc, uint32_t cb_out, uint32_t rows_t,
                       uint32_t cols_t, uint32_t dh_t, bool first, bool last) {
    const uint32_t tiles = rows_t * dh_t;
    const uint32_t cb_dst = last ? cb_out : cb_acc;
    if (!first) {
        cb_wait_front(cb_acc, tiles);
    }
    cb_reserve_back(cb_dst, tiles);
    for (uint32_t r = 0; r < rows_t; ++r) {
        for (uint32_t d = 0; d < dh_t; ++d) {
            tile_regs_acquire();
            if (!first) {
                load_fp32(cb_acc, r * dh_t + d, 0);
            }
            reconfig_data_format(cb_b, cb_a);
            matmul_init(cb_a, cb_b, 0);
            for (uint32_t c = 0; c < cols_t; ++c) {
                matmul_tiles(cb_a, cb_b, r * cols_t + c, c * dh_t + d, 0);
            }
            pack_dst0(cb_dst);
        }
    }
    cb_push_back(cb_dst, tiles);
    if (!first) {
        cb_pop_front(cb_acc, tiles);
    }
}

void kernel_main() {
    // Shapes are runtime args so that one compiled kernel serves every shape (the CBs are sized by the host).
    const uint32_t q_chunk_t = get_arg_val<uint32_t>(0);
    const uint32_t k_chunk_t = get_arg_val<uint32_t>(1);
    const uint32_t dh_t = get_arg_val<uint32_t>(2);
    const uint32_t s_t = get_arg_val<uint32_t>(3);  // padded sequence, tiles (a multiple of both chunks)
    const uint32_t causal = get_arg_val<uint32_t>(4);
    const uint32_t k_full_t = get_arg_val<uint32_t>(5);
    const uint32_t kv_start = get_arg_val<uint32_t>(6);  // pass 1 units of this core
    const uint32_t kv_count = get_arg_val<uint32_t>(7);
    const uint32_t q_start = get_arg_val<uint32_t>(8);  // pass 2 units of this core
    const uint32_t q_count = get_arg_val<uint32_t>(9);
    const uint32_t scale_bits = get_arg_val<uint32_t>(10);
    const uint32_t group = get_arg_val<uint32_t>(11);  // query heads per kv head
    const uint32_t window = get_arg_val<uint32_t>(12);  // sliding window in keys, 0 = none (causal only)
    const uint32_t q_tiles = q_chunk_t * dh_t;
    const uint32_t kv_tiles = k_chunk_t * dh_t;
    const uint32_t s_tiles = q_chunk_t * k_chunk_t;
    const uint32_t nq = s_t / q_chunk_t;
    const uint32_t nk = s_t / k_chunk_t;

    compute_kernel_hw_startup<SrcOrder::Reverse>(bwd::cb_q, bwd::cb_k, bwd::cb_p);
    cb_wait_front(bwd::cb_ones, 1);

    // Pass 1: dK, dV of one K/V chunk per unit.
    for (uint32_t w = kv_start; w < kv_start + kv_count; ++w) {
        const uint32_t k0 = zigzag_q_chunk(w, nk) * k_chunk_t;
        const uint32_t j0 = bwd::first_q_chunk_for(k0, q_chunk_t, causal);
        const uint32_t j1 = bwd::end_q_chunk_for(k0, k_chunk_t, q_chunk_t, nq, window);
        const uint32_t blocks = group * (j1 - j0);
        cb_wait_front(bwd::cb_k, kv_tiles);
        cb_wait_front(bwd::cb_v, kv_tiles);
        for (uint32_t n = 0; n < blocks; ++n) {
            const uint32_t q0 = (j0 + n % (j1 - j0)) * q_chunk_t;
            cb_wait_front(bwd::cb_q, q_tiles);
            cb_wait_front(bwd::cb_do, q_tiles);
            cb_wait_front(bwd::cb_lse, q_chunk_t);
            row_dot(q_chunk_t, dh_t, true);
            cb_wait_front(bwd::cb_dbc, q_chunk_t);
            score_block(bwd::cb_k, bwd::cb_q, bwd::cb_v, bwd::cb_do, k_chunk_t, q_chunk_t, dh_t, true,
                        block_masked(q0, k0, q_chunk_t, k_chunk_t, k_full_t, causal, window), scale_bits);
            cb_wait_front(bwd::cb_ds, s_tiles);
            accumulate(bwd::cb_ds, bwd::cb_q, bwd::cb_dk_acc, bwd::cb_dk, k_chunk_t, q_chunk_t, dh_t, n == 0,
                       n + 1 == blocks);
            accumulate(bwd::cb_p, bwd::cb_do, bwd::cb_dv_acc, bwd::cb_dv, k_chunk_t, q_chunk_t, dh_t, n == 0,
                       n + 1 == blocks);
            cb_pop_front(bwd::cb_ds, s_tiles);
            cb_pop_front(bwd::cb_p, s_tiles);
            cb_pop_front(bwd::cb_dbc, q_chunk_t);
            cb_pop_front(bwd::cb_lse, q_chunk_t);
            cb_pop_front(bwd::cb_do, q_tiles);
            cb_pop_front(bwd::cb_q, q_tiles);
        }
        cb_pop_front(bwd::cb_v, kv_tiles);
        cb_pop_front(bwd::cb_k, kv_tiles);
    }

    // Pass 2: dQ of one Q chunk per unit.
    for (uint32_t w = q_start; w < q_start + q_count; ++w) {
        const uint32_t q0 = zigzag_q_chunk(w, nq) * q_chunk_t;
        const uint32_t k_begin = first_k_chunk(q0, k_chunk_t, window);
        const uint32_t k_end = k_chunks_for(q0, q_chunk_t, k_chunk_t, nk, causal);
        cb_wait_front(bwd::cb_q, q_tiles);
        cb_wait_front(bwd::cb_do, q_tiles);
        cb_wait_front(bwd::cb_lse, q_chunk_t);
        row_dot(q_chunk_t, dh_t, false);
        cb_wait_front(bwd::cb_dbc, q_chunk_t);
        for (uint32_t kc = k_begin; kc < k_end; ++kc) {
            const uint32_t k0 = kc * k_chunk_t;
            cb_wait_front(bwd::cb_k, kv_tiles);
            cb_wait_front(bwd::cb_v, kv_tiles);
            score_block(bwd::cb_q, bwd::cb_k, bwd::cb_do, bwd::cb_v, q_chunk_t, k_chunk_t, dh_t, false,
                        block_masked(q0, k0, q_chunk_t, k_chunk_t, k_full_t, causal, window), scale_bits);
            cb_wait_front(bwd::cb_ds, s_tiles);
            accumulate(bwd::cb_ds, bwd::cb_k, bwd::cb_dq_acc, bwd::cb_dq, q_chunk_t, k_chunk_t, dh_t, kc == k_begin,
                       kc + 1 == k_end);
            cb_pop_front(bwd::cb_ds, s_tiles);
            cb_pop_front(bwd::cb_p, s_tiles);
            cb_pop_front(bwd::cb_v, kv_tiles);
            cb_pop_front(bwd::cb_k, kv_tiles);
        }
        cb_pop_front(bwd::cb_dbc, q_chunk_t);
        cb_pop_front(bwd::cb_lse, q_chunk_t);
        cb_pop_front(bwd::cb_do, q_tiles);
        cb_pop_front(bwd::cb_q, q_tiles);
    }
    cb_pop_front(bwd::cb_ones, 1);
}
