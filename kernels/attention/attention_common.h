// Shared by reader.cpp, compute.cpp and writer.cpp of the flash-attention kernel: the circular-buffer indices
// (ops/attention.py _attention_cbs defines the CBs at these indices; tests/test_kern_host.py checks they agree)
// and the work-unit index math all three kernels must compute identically.
#pragma once
#include <stdint.h>

// Inputs (reader -> compute).
constexpr uint32_t cb_q = 0;       // Q chunk [q_chunk_t x dh_t]
constexpr uint32_t cb_k = 1;       // K chunk, tiles in transposed order [dh_t x k_chunk_t] (reader.cpp)
constexpr uint32_t cb_v = 2;       // V chunk [k_chunk_t x dh_t]
constexpr uint32_t cb_mask = 3;    // mask block [q_chunk_t x k_chunk_t], only for blocks that need one
constexpr uint32_t cb_scaler = 4;  // the reduce scaler (1.0 in row 0 of each face), once per run
constexpr uint32_t cb_consts = 5;  // the constant tiles (reader only: masks are assembled from them in L1)
// Outputs (compute -> writer).
constexpr uint32_t cb_out = 16;
constexpr uint32_t cb_lse = 17;
// Compute-only intermediates.
constexpr uint32_t cb_s = 24;      // scores S = scale * Q K^T (+ mask)
constexpr uint32_t cb_p = 25;      // P = exp(S - m)
constexpr uint32_t cb_m_a = 26;    // running max, even K chunks (fp32)
constexpr uint32_t cb_l = 27;      // running sum, two generations (fp32)
constexpr uint32_t cb_o = 28;      // running output, two generations
constexpr uint32_t cb_alpha = 29;  // exp(m_old - m_new)
constexpr uint32_t cb_linv = 30;   // 1 / l
constexpr uint32_t cb_m_b = 31;    // running max, odd K chunks (fp32)

// Work unit w (one Q chunk of one (batch, head)) -> its Q chunk. Units are numbered zigzag per (batch, head):
// 0, nq-1, 1, nq-2, ... so that a core taking a contiguous, even-sized range gets low + high chunks, which
// balances causal work (a low chunk sees few K chunks, a high chunk many).
inline uint32_t zigzag_q_chunk(uint32_t w, uint32_t nq) {
    const uint32_t j = w % nq;
    return (j % 2 == 0) ? j / 2 : nq - 1 - j / 2;
}

// K chunks a Q chunk starting at query tile q0 attends to: causal skips chunks that start after its last row.
inline uint32_t k_chunks_for(uint32_t q0, uint32_t q_chunk_t, uint32_t k_chunk_t, uint32_t nk_all, uint32_t causal) {
    return causal ? (q0 + q_chunk_t + k_chunk_t - 1) / k_chunk_t : nk_all;
}

// First K chunk a Q chunk starting at query tile q0 attends to: with a sliding window of `window` keys (0 = none)
// its first row sees keys from 32*q0 - window + 1 on, and chunks that end before that key are skipped.
inline uint32_t first_k_chunk(uint32_t q0, uint32_t k_chunk_t, uint32_t window) {
    return (window == 0 || 32 * q0 < window) ? 0 : (32 * q0 - window + 1) / (32 * k_chunk_t);
}

// Whether the (Q chunk at q0, K chunk at k0) block gets a mask: it reaches the diagonal (causal), holds key
// padding (key tiles from k_full_t on), or starts left of the window of the chunk's last query row.
inline bool block_masked(uint32_t q0, uint32_t k0, uint32_t q_chunk_t, uint32_t k_chunk_t, uint32_t k_full_t,
                         uint32_t causal, uint32_t window) {
    const bool window_edge = window != 0 && 32 * k0 + window < 32 * (q0 + q_chunk_t);
    return window_edge || (causal ? (k0 + k_chunk_t > q0) : (k0 + k_chunk_t > k_full_t));
}
