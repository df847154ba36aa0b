// Shared by reader_bwd.cpp, compute_bwd.cpp and writer_bwd.cpp of the attention backward kernel: circular-buffer
// indices (kernels/attention/backward.py _bwd_cbs defines the CBs at these indices) and the work-unit math all
// three kernels must compute identically. The chunk helpers (zigzag_q_chunk, k_chunks_for, first_k_chunk,
// block_masked) are the forward's, from attention_common.h: the backward visits exactly the blocks the forward does.
#pragma once
#include <stdint.h>
#include "attention_common.h"

namespace bwd {
// Inputs (reader -> compute).
constexpr uint32_t cb_q = 0;      // Q chunk [q_chunk_t x dh_t]
constexpr uint32_t cb_k = 1;      // K chunk [k_chunk_t x dh_t]
constexpr uint32_t cb_v = 2;      // V chunk [k_chunk_t x dh_t]
constexpr uint32_t cb_mask = 3;   // the consts tiles [NUM_CONSTS], read once per run; compute_bwd indexes them by
                                  // mask_tile (no per-block mask assembly, no DRAM reads per block)
constexpr uint32_t cb_do = 4;     // dO chunk [q_chunk_t x dh_t]
constexpr uint32_t cb_o = 5;      // O chunk [q_chunk_t x dh_t] (only for D = rowsum(dO * O))
constexpr uint32_t cb_lse = 6;    // lse of the Q chunk's rows, broadcast over a tile (fp32): [q_chunk_t]
constexpr uint32_t cb_ones = 7;   // an all-ones tile, once per run (turns D into a broadcast tile by a matmul)
// Outputs (compute -> writer).
constexpr uint32_t cb_dq = 16;
constexpr uint32_t cb_dk = 17;
constexpr uint32_t cb_dv = 18;
// Compute-only intermediates.
constexpr uint32_t cb_prod = 24;    // dO * O of one Q chunk (fp32) [q_chunk_t x dh_t]
constexpr uint32_t cb_dbc = 25;     // D = rowsum(dO * O), broadcast over a tile (fp32) [q_chunk_t]
constexpr uint32_t cb_p = 26;       // P (or P^T in the K/V pass) of one block [rows x cols]
constexpr uint32_t cb_ds = 27;      // scale * dS (or its transpose) of one block [rows x cols]
constexpr uint32_t cb_dq_acc = 28;  // running dQ, two generations (fp32)
constexpr uint32_t cb_dk_acc = 29;  // running dK, two generations (fp32)
constexpr uint32_t cb_dv_acc = 30;  // running dV, two generations (fp32)

// Tiles of the consts tensor (built by kernels/attention/backward.py bwd_consts, NUM_CONSTS there too).
constexpr uint32_t NUM_CONSTS = 12;
constexpr uint32_t CONST_ZERO = 0;
constexpr uint32_t CONST_NEG_INF = 1;
constexpr uint32_t CONST_CAUSAL = 2;     // -inf where col > row (score block rows = queries)
constexpr uint32_t CONST_CAUSAL_T = 3;   // -inf where row > col (transposed block, rows = keys)
constexpr uint32_t CONST_KEY_PAD = 4;    // -inf in columns past the last valid key
constexpr uint32_t CONST_KEY_PAD_T = 5;  // -inf in rows past the last valid key
constexpr uint32_t CONST_ONES = 6;
// Sliding window (causal only; window = 0: none): key tile gk against query tile gq, delta = gq - gk, is cut by the
// window's left edge for at most two deltas, window/32 and window/32 + 1 (as in the forward's reader.cpp); the host
// ships those edge tiles in both orientations, copied from the forward's consts (program.py attention_consts).
// Tiles wholly left of the window get CONST_WINDOW_FAR (the forward's large finite negative: exp of it is 0 too).
constexpr uint32_t CONST_WINDOW_EDGE0 = 7;    // delta = window/32, rows = queries (also causal when delta = 0)
constexpr uint32_t CONST_WINDOW_EDGE1 = 8;    // delta = window/32 + 1
constexpr uint32_t CONST_WINDOW_EDGE0_T = 9;  // the two transposed (rows = keys)
constexpr uint32_t CONST_WINDOW_EDGE1_T = 10;
constexpr uint32_t CONST_WINDOW_FAR = 11;

// First Q chunk of q_chunk_t tiles whose rows reach key tile k0 (causal: earlier chunks see none of the K chunk).
inline uint32_t first_q_chunk_for(uint32_t k0, uint32_t q_chunk_t, uint32_t causal) {
    return causal ? k0 / q_chunk_t : 0;
}

// One past the last Q chunk whose rows reach the K chunk at key tile k0: with a window, the chunk's last key
// 32*(k0 + k_chunk_t) - 1 is seen by queries up to window - 1 rows later, and chunks starting after that are
// skipped (pass 1's counterpart of first_k_chunk).
inline uint32_t end_q_chunk_for(uint32_t k0, uint32_t k_chunk_t, uint32_t q_chunk_t, uint32_t nq, uint32_t window) {
    if (window == 0) return nq;
    const uint32_t last_query = 32 * (k0 + k_chunk_t) + window - 2;
    const uint32_t end = last_query / (32 * q_chunk_t) + 1;
    return end < nq ? end : nq;
}

// Mask tile of score tile (query tile gq, key tile gk); `transposed`: the block's rows are keys. The causal and
// window cases are the forward's reader.cpp causal_mask_tile, tile for tile.
inline uint32_t mask_tile(uint32_t gq, uint32_t gk, uint32_t k_full_t, uint32_t causal, uint32_t window,
                          bool transposed) {
    if (causal) {
        if (gk > gq) return CONST_NEG_INF;
        const uint32_t delta = gq - gk;
        if (window != 0 && 32 * delta + 1 >= window + 32) return CONST_WINDOW_FAR;  // 32*delta - window >= 31
        if (window != 0 && 32 * delta + 31 >= window) {
            return (transposed ? CONST_WINDOW_EDGE0_T : CONST_WINDOW_EDGE0) + (delta - window / 32);
        }
        return delta == 0 ? (transposed ? CONST_CAUSAL_T : CONST_CAUSAL) : CONST_ZERO;
    }
    return gk < k_full_t ? CONST_ZERO : (gk == k_full_t ? (transposed ? CONST_KEY_PAD_T : CONST_KEY_PAD) : CONST_NEG_INF);
}
}  // namespace bwd
