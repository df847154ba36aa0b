// Flash attention forward, reader (RISC-V 0): streams Q chunks, K/V chunks and mask tiles into circular buffers.
//
// Work unit = one Q chunk of one (batch, head), in the zigzag order of attention_common.h.
//
// Masks are never computed here: the host ships a small "consts" tensor of ready tiles (zero, -inf, causal
// diagonal, key padding) and the reader assembles each masked block from them, tile by tile.
#include <stdint.h>
#include "api/dataflow/dataflow_api.h"
#include "attention_common.h"

// Tiles of the consts tensor (built by ops/attention.py).
constexpr uint32_t CONST_SCALER = 0;   // 1.0 in row 0 of each face: the reduce scaler
constexpr uint32_t CONST_ZERO = 1;
constexpr uint32_t CONST_NEG_INF = 2;
constexpr uint32_t CONST_CAUSAL = 3;   // -inf where col > row, 0 elsewhere
constexpr uint32_t CONST_KEY_PAD = 4;  // -inf in columns past the last valid key, 0 elsewhere
// Sliding window: key tile gk against query tile gq, delta = gq - gk, is cut by the window's left edge when
// 32*delta - window lies in [-31, 30]; that holds for at most two deltas, window/32 and window/32 + 1, whose
// tiles the host ships (the first includes the causal diagonal when window < 32). Tiles wholly left of the
// window get WINDOW_FAR. Window masks are a large finite negative, not -inf: a row may see no key at all in its
// first K chunk, and exp(S - max) must stay finite there (the next chunk's alpha = exp(-1e30 - m) = 0 erases it).
constexpr uint32_t CONST_WINDOW_EDGE = 5;  // 5: delta = window/32, 6: delta = window/32 + 1
constexpr uint32_t CONST_WINDOW_FAR = 7;
constexpr uint32_t CONST_TILES = 8;  // ATTENTION_CONST_TILES in program.py

inline uint32_t causal_mask_tile(uint32_t gq, uint32_t gk, uint32_t window) {
    if (gk > gq) return CONST_NEG_INF;
    const uint32_t delta = gq - gk;
    if (window != 0 && 32 * delta + 1 >= window + 32) return CONST_WINDOW_FAR;   // 32*delta - window >= 31
    if (window != 0 && 32 * delta + 31 >= window) return CONST_WINDOW_EDGE + (delta - window / 32);
    return delta == 0 ? CONST_CAUSAL : CONST_ZERO;
}

void kernel_main() {
    constexpr auto q_args = TensorAccessorArgs<0>();
    constexpr auto k_args = TensorAccessorArgs<q_args.next_compile_time_args_offset()>();
    constexpr auto v_args = TensorAccessorArgs<k_args.next_compile_time_args_offset()>();
    constexpr auto c_args = TensorAccessorArgs<v_args.next_compile_time_args_offset()>();

    const uint32_t q_addr = get_arg_val<uint32_t>(0);
    const uint32_t k_addr = get_arg_val<uint32_t>(1);
    const uint32_t v_addr = get_arg_val<uint32_t>(2);
    const uint32_t c_addr = get_arg_val<uint32_t>(3);
    const uint32_t num_heads = get_arg_val<uint32_t>(4);
    const uint32_t num_kv_heads = get_arg_val<uint32_t>(5);
    const uint32_t sq_t = get_arg_val<uint32_t>(6);         // padded query length, tiles (multiple of q_chunk_t)
    const uint32_t sk_t = get_arg_val<uint32_t>(7);         // padded key length, tiles (multiple of k_chunk_t)
    const uint32_t causal = get_arg_val<uint32_t>(8);
    const uint32_t k_full_t = get_arg_val<uint32_t>(9);     // key tiles with no padding (== sk_t when none)
    const uint32_t work_start = get_arg_val<uint32_t>(10);
    const uint32_t work_count = get_arg_val<uint32_t>(11);
    const uint32_t q_chunk_t = get_arg_val<uint32_t>(12);  // Q chunk rows, in tiles
    const uint32_t k_chunk_t = get_arg_val<uint32_t>(13);  // K/V chunk rows, in tiles
    const uint32_t dh_t = get_arg_val<uint32_t>(14);       // head_dim / 32
    const uint32_t window = get_arg_val<uint32_t>(15);     // sliding window in keys, 0 = none (causal only)

    const auto q_acc = TensorAccessor(q_args, q_addr, get_tile_size(cb_q));
    const auto k_acc = TensorAccessor(k_args, k_addr, get_tile_size(cb_k));
    const auto v_acc = TensorAccessor(v_args, v_addr, get_tile_size(cb_v));
    const auto c_acc = TensorAccessor(c_args, c_addr, get_tile_size(cb_mask));

    const uint32_t nq = sq_t / q_chunk_t;
    const uint32_t nk_all = sk_t / k_chunk_t;
    const uint32_t heads_per_kv = num_heads / num_kv_heads;
    const uint32_t mask_tile_bytes = get_tile_size(cb_mask);

    // The constant tiles, once for the whole run, into cb_consts (this kernel is its producer and its consumer):
    // masks are then assembled from L1 by local NoC reads instead of re-reading DRAM pages for every masked block.
    cb_reserve_back(cb_consts, CONST_TILES);
    for (uint32_t t = 0; t < CONST_TILES; ++t) {
        noc_async_read_page(t, c_acc, get_write_ptr(cb_consts) + t * mask_tile_bytes);
    }
    noc_async_read_barrier();
    cb_push_back(cb_consts, CONST_TILES);
    cb_wait_front(cb_consts, CONST_TILES);
    const uint32_t consts_l1 = get_read_ptr(cb_consts);

    // The reduce scaler, once for the whole run.
    cb_reserve_back(cb_scaler, 1);
    noc_async_read(get_noc_addr(consts_l1 + CONST_SCALER * mask_tile_bytes), get_write_ptr(cb_scaler),
                   mask_tile_bytes);
    noc_async_read_barrier();
    cb_push_back(cb_scaler, 1);

    for (uint32_t w = work_start; w < work_start + work_count; ++w) {
        const uint32_t bh = w / nq;
        const uint32_t q_chunk = zigzag_q_chunk(w, nq);
        const uint32_t batch = bh / num_heads;
        const uint32_t head = bh % num_heads;
        const uint32_t kv_bh = batch * num_kv_heads + head / heads_per_kv;
        const uint32_t q0 = q_chunk * q_chunk_t;  // first query tile row of the chunk

        cb_reserve_back(cb_q, q_chunk_t * dh_t);
        uint32_t l1 = get_write_ptr(cb_q);
        for (uint32_t qt = 0; qt < q_chunk_t; ++qt) {
            for (uint32_t dt = 0; dt < dh_t; ++dt) {
                noc_async_read_page((bh * sq_t + q0 + qt) * dh_t + dt, q_acc, l1);
                l1 += get_tile_size(cb_q);
            }
        }
        noc_async_read_barrier();
        cb_push_back(cb_q, q_chunk_t * dh_t);

        const uint32_t nk = k_chunks_for(q0, q_chunk_t, k_chunk_t, nk_all, causal);
        for (uint32_t kc = first_k_chunk(q0, k_chunk_t, window); kc < nk; ++kc) {
            const uint32_t k0 = kc * k_chunk_t;
            // K tiles go into the CB transposed, [dh_t][k_chunk_t]: a row of score tiles is then one matmul_block
            // per head-dim tile (compute.cpp).
            cb_reserve_back(cb_k, k_chunk_t * dh_t);
            l1 = get_write_ptr(cb_k);
            for (uint32_t kt = 0; kt < k_chunk_t; ++kt) {
                for (uint32_t dt = 0; dt < dh_t; ++dt) {
                    noc_async_read_page((kv_bh * sk_t + k0 + kt) * dh_t + dt, k_acc,
                                        l1 + (dt * k_chunk_t + kt) * get_tile_size(cb_k));
                }
            }

            const bool masked = block_masked(q0, k0, q_chunk_t, k_chunk_t, k_full_t, causal, window);
            if (masked) {
                cb_reserve_back(cb_mask, q_chunk_t * k_chunk_t);
                l1 = get_write_ptr(cb_mask);
                for (uint32_t qt = 0; qt < q_chunk_t; ++qt) {
                    for (uint32_t kt = 0; kt < k_chunk_t; ++kt) {
                        const uint32_t gq = q0 + qt;
                        const uint32_t gk = k0 + kt;
                        uint32_t tile;
                        if (causal) {
                            tile = causal_mask_tile(gq, gk, window);
                        } else {
                            tile = gk < k_full_t ? CONST_ZERO : (gk == k_full_t ? CONST_KEY_PAD : CONST_NEG_INF);
                        }
                        noc_async_read(get_noc_addr(consts_l1 + tile * mask_tile_bytes), l1, mask_tile_bytes);
                        l1 += mask_tile_bytes;
                    }
                }
            }
            noc_async_read_barrier();  // one barrier for the K chunk and its mask
            cb_push_back(cb_k, k_chunk_t * dh_t);
            if (masked) {
                cb_push_back(cb_mask, q_chunk_t * k_chunk_t);
            }

            cb_reserve_back(cb_v, k_chunk_t * dh_t);
            l1 = get_write_ptr(cb_v);
            for (uint32_t kt = 0; kt < k_chunk_t; ++kt) {
                for (uint32_t dt = 0; dt < dh_t; ++dt) {
                    noc_async_read_page((kv_bh * sk_t + k0 + kt) * dh_t + dt, v_acc, l1);
                    l1 += get_tile_size(cb_v);
                }
            }
            noc_async_read_barrier();
            cb_push_back(cb_v, k_chunk_t * dh_t);
        }
    }
    cb_pop_front(cb_consts, CONST_TILES);
}
