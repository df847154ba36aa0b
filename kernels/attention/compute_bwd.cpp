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
// blocks are masked (tiles of the consts tensor, resident in cb_mask, picked per score tile by bwd::mask_tile), so
// their P (and so dS) is 0 outside the window.
// Blocking: every matmul is matmul_block over output subblocks that fit DST (4 fp32 tiles, half sync), sharing the
// unpack of each tile along the reduced dim where the operands' layouts allow (dQ/dK/dV: ct head-dim tiles per
// dS / P tile; S and dP: the score tiles of a group when head_dim is one tile); score tiles go SCORE_GROUP to a DST
// acquire, the tiles of a query line sharing its lse / D tile, and inits / reconfigs are issued only when they
// change something (Config). Each output element still sums the same products in the same order as one
// matmul_tiles chain per tile and goes through the same fp32 SFPU ops, so the results are bit-identical to the
// per-tile kernel (tests/test_kern_attention_bwd_blocked.py).
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
#include "attention_formats.h"

constexpr uint32_t DST_TILES = 4;             // DST capacity with fp32_dest_acc_en (half sync)
constexpr uint32_t SCRATCH = DST_TILES - 1;    // DST slot of the second operand of the SFPU binary ops
constexpr uint32_t SCORE_GROUP = DST_TILES - 1;  // score tiles per DST acquire (the rest of DST is SCRATCH)

inline uint32_t min_u(uint32_t a, uint32_t b) { return a < b ? a : b; }

// The configuration the unpacker, the FPU and the packer were last programmed with, so that every init and every
// reconfiguration is issued only when it changes something (each one drains the pipeline: tilegraph/perf/model.py
// INIT_CYCLES). Source registers and the packer: the forward's Formats (attention_formats.h). The FPU init is
// remembered as a key: a matmul_block shape (transpose, ct, rt, kt: what matmul_block_init programs), a copy
// source CB (copy_init loads the CB's unpack path) or the eltwise multiply.
struct Config : Formats {
    uint32_t fpu = 0;  // 0: nothing this kernel relies on
    // matmul in0 x in1 (in0 -> SrcB, in1 -> SrcA) with subblock ct x rt over kt.
    void matmul(uint32_t in0, uint32_t in1, uint32_t transpose, uint32_t ct, uint32_t rt, uint32_t kt) {
        src(in1, in0);
        const uint32_t key = 0x80000000u | (transpose << 30) | (ct << 24) | (rt << 16) | kt;
        if (fpu != key) {
            matmul_block_init(in0, in1, transpose, ct, rt, kt);
            fpu = key;
        }
    }
    void copy(uint32_t cb) {
        srca(cb);
        const uint32_t key = 0x40000000u | cb;
        if (fpu != key) {
            copy_init(cb);
            fpu = key;
        }
    }
    void mul(uint32_t in0, uint32_t in1) {  // mul_tiles: in0 -> SrcA, in1 -> SrcB
        src(in0, in1);
        const uint32_t key = 0x20000000u | (in0 << 8) | in1;
        if (fpu != key) {
            mul_init(in0, in1);
            fpu = key;
        }
    }
};

// Hand DST tiles 0 .. n-1 to the packer and pack them into `cb`, in order.
inline void pack_group(Config& cfg, uint32_t cb, uint32_t n) {
    tile_regs_commit();
    tile_regs_wait();
    cfg.out(cb);
    for (uint32_t j = 0; j < n; ++j) {
        pack_tile(j, cb);
    }
    tile_regs_release();
}

// D = rowsum(dO * O) of the Q chunk now at the front of cb_do / cb_o, as broadcast tiles in cb_dbc (row form when
// `row_form`: tile qt holds D of query qt*32 + c in column c of every row). Pops cb_o.
inline void row_dot(Config& cfg, uint32_t q_chunk_t, uint32_t dh_t, bool row_form) {
    const uint32_t q_tiles = q_chunk_t * dh_t;
    cb_wait_front(bwd::cb_o, q_tiles);
    cb_reserve_back(bwd::cb_prod, q_tiles);
    for (uint32_t t0 = 0; t0 < q_tiles; t0 += DST_TILES) {
        const uint32_t g = min_u(DST_TILES, q_tiles - t0);
        tile_regs_acquire();
        cfg.mul(bwd::cb_do, bwd::cb_o);
        for (uint32_t j = 0; j < g; ++j) {
            mul_tiles(bwd::cb_do, bwd::cb_o, t0 + j, t0 + j, j);
        }
        pack_group(cfg, bwd::cb_prod, g);
    }
    cb_push_back(bwd::cb_prod, q_tiles);
    cb_pop_front(bwd::cb_o, q_tiles);

    // Each D tile is the sum over dt of one product with the ones tile, dt in order (as one matmul_tiles chain).
    cb_wait_front(bwd::cb_prod, q_tiles);
    cb_reserve_back(bwd::cb_dbc, q_chunk_t);
    for (uint32_t q0 = 0; q0 < q_chunk_t; q0 += DST_TILES) {
        const uint32_t g = min_u(DST_TILES, q_chunk_t - q0);
        tile_regs_acquire();
        if (row_form) {  // (1 X^T)[r, c] = sum_k X[c, k]: the g outputs share the ones tile (in0)
            if (dh_t == 1) {  // their in1 tiles are adjacent: one subblock 1 x g
                cfg.matmul(bwd::cb_ones, bwd::cb_prod, 1, g, 1, 1);
                matmul_block(bwd::cb_ones, bwd::cb_prod, 0, q0, 0, 1, g, 1, 1);
            } else {
                cfg.matmul(bwd::cb_ones, bwd::cb_prod, 1, 1, 1, dh_t);
                for (uint32_t dt = 0; dt < dh_t; ++dt) {
                    for (uint32_t j = 0; j < g; ++j) {
                        matmul_block(bwd::cb_ones, bwd::cb_prod, 0, (q0 + j) * dh_t + dt, j, 1, 1, 1, dh_t);
                    }
                }
            }
        } else {  // (X 1)[r, c] = sum_k X[r, k]: subblock g x 1 down the rows of X
            cfg.matmul(bwd::cb_prod, bwd::cb_ones, 0, 1, g, dh_t);
            for (uint32_t dt = 0; dt < dh_t; ++dt) {
                matmul_block(bwd::cb_prod, bwd::cb_ones, q0 * dh_t + dt, 0, 0, 0, 1, g, dh_t);
            }
        }
        pack_group(cfg, bwd::cb_dbc, g);
    }
    cb_push_back(bwd::cb_dbc, q_chunk_t);
    cb_pop_front(bwd::cb_prod, q_tiles);
}

// Where a score block needs a mask, and which consts tile (resident in cb_mask for the whole run) masks its tile
// (r, c): the reader's former per-block assembly (bwd::mask_tile), done here by index instead of by copying tiles.
struct BlockMask {
    uint32_t q0, k0, k_full_t, causal, window;  // the block's first query / key tile and the mask parameters
    bool masked;
    uint32_t tile(uint32_t r, uint32_t c, bool transposed) const {  // transposed: rows are keys
        return transposed ? bwd::mask_tile(q0 + c, k0 + r, k_full_t, causal, window, true)
                          : bwd::mask_tile(q0 + r, k0 + c, k_full_t, causal, window, false);
    }
};

// Up to SCORE_GROUP score tiles that go through DST together: the next ones of the block in query-major order
// (pass 2: row-major, query = row; pass 1: column-major, query = column), so a group crosses into the next query
// line when a line's length is not a multiple of the group (it then loads one lse / D tile per line it touches).
struct ScoreGroup {
    uint32_t n;                               // tiles
    uint32_t r[SCORE_GROUP], c[SCORE_GROUP];  // block row / column of tile j
    uint32_t query[SCORE_GROUP];              // its query tile within the Q chunk (lse / D index)
    uint32_t index[SCORE_GROUP];              // its block index r * cols + c (cb_p / cb_ds order)
    bool one_line;                            // all tiles share one query line
    ScoreGroup(uint32_t first, uint32_t s_tiles, uint32_t rows_t, uint32_t cols_t, bool transposed) {
        n = min_u(SCORE_GROUP, s_tiles - first);
        const uint32_t line_len = transposed ? rows_t : cols_t;
        for (uint32_t j = 0; j < n; ++j) {
            const uint32_t line = (first + j) / line_len, along = (first + j) % line_len;
            r[j] = transposed ? along : line;
            c[j] = transposed ? line : along;
            query[j] = line;
            index[j] = r[j] * cols_t + c[j];
        }
        one_line = query[n - 1] == query[0];
    }
    // DST[SCRATCH] = tile query[j] of `cb` (lse or D) whenever tile j starts a new query line, then op(j).
    template <typename Op>
    void per_query(Config& cfg, uint32_t cb, Op op) const {
        cfg.copy(cb);
        for (uint32_t j = 0; j < n; ++j) {
            if (j == 0 || query[j] != query[j - 1]) {
                copy_tile(cb, query[j], SCRATCH);
            }
            op(j);
        }
    }
    void pack(Config& cfg, uint32_t cb) const {  // tile j to block position index[j] of the reserved region
        tile_regs_commit();
        tile_regs_wait();
        cfg.out(cb);
        for (uint32_t j = 0; j < n; ++j) {
            pack_tile<true>(j, cb, index[j]);
        }
        tile_regs_release();
    }
};

// DST[j] = sum over dt of R(r_j, dt) C(c_j, dt)^T for the tiles of a group (dt in order, so each element's fp32
// accumulation is that of one matmul_tiles chain). A group inside one query line is one subblock per dt where the
// operand layouts allow: pass 1's rows operand tiles (r0 + j, dt) are dh_t apart (g x 1, kt = dh_t), pass 2's
// column operand tiles (c0 + j, dt) are adjacent only when dh_t == 1 (1 x g, sharing the row tile's unpack).
inline void score_matmul(Config& cfg, uint32_t cb_rows, uint32_t cb_cols, const ScoreGroup& grp, uint32_t dh_t,
                         bool transposed) {
    const uint32_t g = grp.n, r0 = grp.r[0], c0 = grp.c[0];
    if (grp.one_line && transposed && g > 1) {
        cfg.matmul(cb_rows, cb_cols, 1, 1, g, dh_t);
        for (uint32_t dt = 0; dt < dh_t; ++dt) {
            matmul_block(cb_rows, cb_cols, r0 * dh_t + dt, c0 * dh_t + dt, 0, 1, 1, g, dh_t);
        }
    } else if (grp.one_line && dh_t == 1 && g > 1) {
        cfg.matmul(cb_rows, cb_cols, 1, g, 1, 1);
        matmul_block(cb_rows, cb_cols, r0, c0, 0, 1, g, 1, 1);
    } else {
        cfg.matmul(cb_rows, cb_cols, 1, 1, 1, dh_t);
        for (uint32_t dt = 0; dt < dh_t; ++dt) {
            for (uint32_t j = 0; j < g; ++j) {
                matmul_block(cb_rows, cb_cols, grp.r[j] * dh_t + dt, grp.c[j] * dh_t + dt, j, 1, 1, 1, dh_t);
            }
        }
    }
}

// One score block: P -> cb_p and scale * dS -> cb_ds, [rows_t x cols_t] tiles each, pushed. The operands are at
// the fronts of their CBs. pass 2: rows = Q (cb_rows = cb_q), cols = K, dP = dO V^T, per-query tiles indexed by
// the row; pass 1 (`transposed`): rows = K, cols = Q, dP^T = V dO^T, per-query tiles indexed by the column.
// Tiles go through DST SCORE_GROUP at a time (ScoreGroup). Per tile the arithmetic is the per-tile chain
// P = exp(scale * S + mask - lse), dS' = scale * ((dP - D) * P), each step one fp32 SFPU op in DST as before.
inline void score_block(Config& cfg, uint32_t cb_rows, uint32_t cb_cols, uint32_t cb_rows2, uint32_t cb_cols2,
                        uint32_t rows_t, uint32_t cols_t, uint32_t dh_t, bool transposed, const BlockMask& mask,
                        uint32_t scale_bits) {
    const uint32_t s_tiles = rows_t * cols_t;
    cb_reserve_back(bwd::cb_p, s_tiles);
    for (uint32_t first = 0; first < s_tiles; first += SCORE_GROUP) {
        const ScoreGroup grp(first, s_tiles, rows_t, cols_t, transposed);
        const uint32_t g = grp.n;
        tile_regs_acquire();
        score_matmul(cfg, cb_rows, cb_cols, grp, dh_t, transposed);
        binop_with_scalar_tile_init();
        for (uint32_t j = 0; j < g; ++j) {
            mul_unary_tile(j, scale_bits);
        }
        if (mask.masked) {
            cfg.copy(bwd::cb_mask);
            add_binary_tile_init();
            for (uint32_t j = 0; j < g; ++j) {
                copy_tile(bwd::cb_mask, mask.tile(grp.r[j], grp.c[j], transposed), SCRATCH);
                add_binary_tile(j, SCRATCH, j);
            }
        }
        sub_binary_tile_init();
        grp.per_query(cfg, bwd::cb_lse, [](uint32_t j) { sub_binary_tile(j, SCRATCH, j); });
        exp_tile_init();
        for (uint32_t j = 0; j < g; ++j) {
            exp_tile(j);
        }
        grp.pack(cfg, bwd::cb_p);
    }
    cb_push_back(bwd::cb_p, s_tiles);

    cb_wait_front(bwd::cb_p, s_tiles);
    cb_reserve_back(bwd::cb_ds, s_tiles);
    for (uint32_t first = 0; first < s_tiles; first += SCORE_GROUP) {
        const ScoreGroup grp(first, s_tiles, rows_t, cols_t, transposed);
        const uint32_t g = grp.n;
        tile_regs_acquire();
        score_matmul(cfg, cb_rows2, cb_cols2, grp, dh_t, transposed);
        sub_binary_tile_init();
        grp.per_query(cfg, bwd::cb_dbc, [](uint32_t j) { sub_binary_tile(j, SCRATCH, j); });
        cfg.copy(bwd::cb_p);
        mul_binary_tile_init();
        for (uint32_t j = 0; j < g; ++j) {
            copy_tile(bwd::cb_p, grp.index[j], SCRATCH);
            mul_binary_tile(j, SCRATCH, j);
        }
        binop_with_scalar_tile_init();
        for (uint32_t j = 0; j < g; ++j) {
            mul_unary_tile(j, scale_bits);
        }
        grp.pack(cfg, bwd::cb_ds);
    }
    cb_push_back(bwd::cb_ds, s_tiles);
}

// out[r, d] (+)= sum_c A[r, c] B[c, d] over a [rows_t x cols_t] block A and a [cols_t x dh_t] chunk B. The running
// sum lives in cb_acc (two generations: the old one at the front, the new one packed behind it); the last block
// packs into cb_out instead. Output subblocks rt x ct (ct head-dim tiles sharing each A tile's unpack, rt rows when
// a row fits DST more than once); DST starts as the old sum (copied in fp32) and the products add in c order, as
// one matmul_tiles chain per tile did.
inline void accumulate(Config& cfg, uint32_t cb_a, uint32_t cb_b, uint32_t cb_acc, uint32_t cb_out, uint32_t rows_t,
                       uint32_t cols_t, uint32_t dh_t, bool first, bool last) {
    const uint32_t tiles = rows_t * dh_t;
    const uint32_t cb_dst = last ? cb_out : cb_acc;
    const uint32_t ct = min_u(dh_t, DST_TILES);
    // Whole rows only (ct == dh_t) when rt > 1, so that the packer writes the subblock's tiles in block order.
    const uint32_t rt_max = ct == dh_t ? DST_TILES / ct : 1;
    if (!first) {
        cb_wait_front(cb_acc, tiles);
    }
    cb_reserve_back(cb_dst, tiles);
    for (uint32_t r0 = 0; r0 < rows_t; r0 += rt_max) {
        const uint32_t rt = min_u(rt_max, rows_t - r0);
        for (uint32_t d0 = 0; d0 < dh_t; d0 += ct) {
            const uint32_t cw = min_u(ct, dh_t - d0);
            tile_regs_acquire();
            if (!first) {
                cfg.copy(cb_acc);
                for (uint32_t r = 0; r < rt; ++r) {
                    for (uint32_t j = 0; j < cw; ++j) {
                        copy_tile(cb_acc, (r0 + r) * dh_t + d0 + j, r * cw + j);
                    }
                }
            }
            cfg.matmul(cb_a, cb_b, 0, cw, rt, cols_t);
            for (uint32_t c = 0; c < cols_t; ++c) {
                matmul_block(cb_a, cb_b, r0 * cols_t + c, c * dh_t + d0, 0, 0, cw, rt, cols_t);
            }
            pack_group(cfg, cb_dst, rt * cw);
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
    Config cfg{{bwd::cb_k, bwd::cb_q, bwd::cb_p}};  // SrcA, SrcB, pack as the startup set them
    cb_wait_front(bwd::cb_ones, 1);
    cb_wait_front(bwd::cb_mask, bwd::NUM_CONSTS);  // the mask tiles, resident for the run

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
            row_dot(cfg, q_chunk_t, dh_t, true);
            cb_wait_front(bwd::cb_dbc, q_chunk_t);
            const BlockMask mask{q0, k0, k_full_t, causal, window,
                                 block_masked(q0, k0, q_chunk_t, k_chunk_t, k_full_t, causal, window)};
            score_block(cfg, bwd::cb_k, bwd::cb_q, bwd::cb_v, bwd::cb_do, k_chunk_t, q_chunk_t, dh_t, true, mask,
                        scale_bits);
            cb_wait_front(bwd::cb_ds, s_tiles);
            accumulate(cfg, bwd::cb_ds, bwd::cb_q, bwd::cb_dk_acc, bwd::cb_dk, k_chunk_t, q_chunk_t, dh_t, n == 0,
                       n + 1 == blocks);
            accumulate(cfg, bwd::cb_p, bwd::cb_do, bwd::cb_dv_acc, bwd::cb_dv, k_chunk_t, q_chunk_t, dh_t, n == 0,
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
        row_dot(cfg, q_chunk_t, dh_t, false);
        cb_wait_front(bwd::cb_dbc, q_chunk_t);
        for (uint32_t kc = k_begin; kc < k_end; ++kc) {
            const uint32_t k0 = kc * k_chunk_t;
            cb_wait_front(bwd::cb_k, kv_tiles);
            cb_wait_front(bwd::cb_v, kv_tiles);
            const BlockMask mask{q0, k0, k_full_t, causal, window,
                                 block_masked(q0, k0, q_chunk_t, k_chunk_t, k_full_t, causal, window)};
            score_block(cfg, bwd::cb_q, bwd::cb_k, bwd::cb_do, bwd::cb_v, q_chunk_t, k_chunk_t, dh_t, false, mask,
                        scale_bits);
            cb_wait_front(bwd::cb_ds, s_tiles);
            accumulate(cfg, bwd::cb_ds, bwd::cb_k, bwd::cb_dq_acc, bwd::cb_dq, q_chunk_t, k_chunk_t, dh_t,
                       kc == k_begin, kc + 1 == k_end);
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
    cb_pop_front(bwd::cb_mask, bwd::NUM_CONSTS);
    cb_pop_front(bwd::cb_ones, 1);
}
